// Implicit-GEMM convolution: one tiled SGEMM kernel (fp32 FFMA, no tensor cores) shared by the
// three directions of conv2d. The GEMM's operands are never materialised: an *iterator* gathers
// each BK-deep slice of the A and B tiles straight from the tensors into registers, and commits
// them to shared memory. The kernel body does not know which convolution it is computing.
//
//   direction        GEMM rows (M)    GEMM cols (N)   reduction          A gather        B
//   forward          N*OH*OW (n,p,q)  K               (r, s, c)          x (im2col)      w
//   backward_input   N*H*W   (n,h,w)  C               (r, s, k)          dy (col2im)     w
//   backward_weight  K                C*R*S           N*OH*OW (split)    dy              x (im2col)
//
// The core is the classic register-blocked SGEMM (SGEMM_CUDA kernel 6/7, CUTLASS's threadblock
// tile): a BM x BN block tile, a TM x TN microtile per thread, a BK-deep double-buffered shared
// memory tile loaded through registers (the next tile's global loads are in flight while the
// current one is multiplied), float4 shared-memory reads of the fragments, one barrier per tile.
// A thread's microtile is split into 4-wide groups spaced BM/(TM/4) apart, so that a warp's
// fragment reads and its output stores cover contiguous addresses.
//
// The reduction order of every output is the plain sequential order of the reduction index and
// does not depend on the tile shape, so every tile configuration gives bit-identical results.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/common.cuh"

namespace emotune::conv {

template <int BM_, int BN_, int BK_, int TM_, int TN_>
struct Tile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_, TM = TM_, TN = TN_;
  static constexpr int THREADS_M = BM / TM, THREADS_N = BN / TN;
  static constexpr int THREADS = THREADS_M * THREADS_N;
  // +4 floats per shared-memory row keeps rows 16-byte aligned (float4 reads) and spreads the
  // column-wise stores of the backward-weight iterator over all 32 banks.
  static constexpr int LDA = BM + 4, LDB = BN + 4;
  // Thread (tm, tn) owns rows g * GROUP_M + tm * 4 + {0..3} for g < TM / 4 (columns likewise).
  static constexpr int GROUP_M = BM / (TM / 4), GROUP_N = BN / (TN / 4);
  static_assert(TM % 4 == 0 && TN % 4 == 0, "microtiles are made of float4 groups");
  static_assert(BM % TM == 0 && BN % TN == 0, "the microtile must divide the block tile");
};

// ---- forward and backward_input --------------------------------------------------------------
// Both are "gather an activation tensor with a filter tap, multiply by a reordered filter":
//   in   [N, IC, IH, IW]   x for forward, dy for backward_input
//   wt   [R*S][IC][OC]     the filter reordered so that a tile row (one tap, one input channel)
//                          is contiguous over the output channels (a small transpose kernel)
//   out  [N, OC, OH, OW]   y for forward (plus bias), dx for backward_input
// Forward reads in[n, c, p*sh - ph + r, q*sw - pw + s]. Backward_input reads, for output pixel
// (h, w), dy[n, k, (h + ph - r) / sh, (w + pw - s) / sw] when the divisions are exact and in
// range: the adjoint of the forward gather, with no rotated filter and no zero-inserted dy.
struct ConvDataParams {
  const float* in;
  const float* wt;
  const float* bias;  // [OC] or null (forward only)
  float* out;
  int n, ic, ih, iw, oc, oh, ow;
  int r, s, pad_h, pad_w, stride_h, stride_w;
  int m;          // n * oh * ow, the GEMM rows
  int ihw, ohw;
  int vec_store;  // ohw % 4 == 0 and out 16-byte aligned: 4 consecutive rows are one float4
};

template <class T, bool kBackward>
struct DataIter {
  using Params = ConvDataParams;
  // A tile (BK x BM): thread loads column a_m, rows a_k + i * A_STEP.
  static constexpr int A_STEP = T::THREADS / T::BM, A_LOADS = T::BK / A_STEP;
  // B tile (BK x BN): thread loads column b_n, rows b_k + i * B_STEP.
  static constexpr int B_STEP = T::THREADS / T::BN, B_LOADS = T::BK / B_STEP;
  static_assert(T::THREADS % T::BM == 0 && T::BK % A_STEP == 0, "A tile: whole rows per pass");
  static_assert(T::THREADS % T::BN == 0 && T::BK % B_STEP == 0, "B tile: whole rows per pass");

  int a_m, a_k, b_n, b_k;
  bool row_ok;
  int in_base;  // offset of image n in `in`
  int y0, x0;   // forward: p*sh - ph, q*sw - pw; backward: h + ph, w + pw
  int col;      // this thread's B column (output channel)
  int r = 0, s = 0, rs = 0, c0 = 0;  // the next tile: filter tap and first input channel
  float a_reg[A_LOADS], b_reg[B_LOADS];

  __device__ __forceinline__ DataIter(const Params& p, int block_m, int block_n, int /*split*/, int tid) {
    a_m = tid % T::BM;
    a_k = tid / T::BM;
    b_n = tid % T::BN;
    b_k = tid / T::BN;
    const int m = block_m + a_m;
    row_ok = m < p.m;
    int img = 0, py = 0, px = 0;
    if (row_ok) {
      img = m / p.ohw;
      const int pix = m - img * p.ohw;
      py = pix / p.ow;
      px = pix - py * p.ow;
    }
    in_base = img * p.ic * p.ihw;
    if (kBackward) {
      y0 = py + p.pad_h;
      x0 = px + p.pad_w;
    } else {
      y0 = py * p.stride_h - p.pad_h;
      x0 = px * p.stride_w - p.pad_w;
    }
    col = block_n + b_n;
  }

  __device__ __forceinline__ int k_tiles(const Params& p) const { return p.r * p.s * ceil_div(p.ic, T::BK); }

  // Global -> registers for the next tile, then step to the one after.
  __device__ __forceinline__ void fetch(const Params& p, int /*block_m*/) {
    int hi, wi;
    bool ok = row_ok;
    if (kBackward) {
      const int th = y0 - r, tw = x0 - s;
      ok = ok && th >= 0 && tw >= 0;
      if (p.stride_h == 1 && p.stride_w == 1) {
        hi = th;
        wi = tw;
      } else {
        ok = ok && th % p.stride_h == 0 && tw % p.stride_w == 0;
        hi = th / p.stride_h;
        wi = tw / p.stride_w;
      }
      ok = ok && hi < p.ih && wi < p.iw;
    } else {
      hi = y0 + r;
      wi = x0 + s;
      ok = ok && (unsigned)hi < (unsigned)p.ih && (unsigned)wi < (unsigned)p.iw;
    }
    const int a_off = ok ? in_base + hi * p.iw + wi : 0;
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int c = c0 + a_k + i * A_STEP;
      a_reg[i] = (ok && c < p.ic) ? __ldg(p.in + a_off + c * p.ihw) : 0.0f;
    }
    const bool col_ok = col < p.oc;
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int c = c0 + b_k + i * B_STEP;
      b_reg[i] = (col_ok && c < p.ic) ? __ldg(p.wt + (rs * p.ic + c) * p.oc + col) : 0.0f;
    }
    c0 += T::BK;
    if (c0 >= p.ic) {
      c0 = 0;
      ++rs;
      if (++s == p.s) {
        s = 0;
        ++r;
      }
    }
  }

  // Registers -> shared memory (As: [BK][LDA], Bs: [BK][LDB]); a warp stores 32 consecutive floats.
  __device__ __forceinline__ void commit(float* As, float* Bs) const {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) As[(a_k + i * A_STEP) * T::LDA + a_m] = a_reg[i];
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) Bs[(b_k + i * B_STEP) * T::LDB + b_n] = b_reg[i];
  }

  __device__ __forceinline__ void store(const Params& p, const float (&acc)[T::TM][T::TN], int block_m,
                                        int block_n, int tm, int tn, int /*split*/) const {
#pragma unroll
    for (int gi = 0; gi < T::TM / 4; ++gi) {
      const int m0 = block_m + gi * T::GROUP_M + tm * 4;  // a multiple of 4
      if (p.vec_store && m0 + 3 < p.m) {
        // ohw % 4 == 0, so rows m0..m0+3 are 4 consecutive pixels of one image.
        const int img = m0 / p.ohw, pix = m0 - img * p.ohw;
        float* dst = p.out + img * p.oc * p.ohw + pix;
#pragma unroll
        for (int j = 0; j < T::TN; ++j) {
          const int n = block_n + (j / 4) * T::GROUP_N + tn * 4 + (j % 4);
          if (n < p.oc) {
            const float b = p.bias ? p.bias[n] : 0.0f;
            const int i0 = gi * 4;
            *reinterpret_cast<float4*>(dst + n * p.ohw) =
                make_float4(acc[i0][j] + b, acc[i0 + 1][j] + b, acc[i0 + 2][j] + b, acc[i0 + 3][j] + b);
          }
        }
      } else {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int m = m0 + e;
          if (m >= p.m) break;
          const int img = m / p.ohw, pix = m - img * p.ohw;
          float* dst = p.out + img * p.oc * p.ohw + pix;
#pragma unroll
          for (int j = 0; j < T::TN; ++j) {
            const int n = block_n + (j / 4) * T::GROUP_N + tn * 4 + (j % 4);
            if (n < p.oc) dst[n * p.ohw] = acc[gi * 4 + e][j] + (p.bias ? p.bias[n] : 0.0f);
          }
        }
      }
    }
  }
};

// ---- backward_weight ------------------------------------------------------------------------
// dw[k, (c,r,s)] = sum over l = (n, p, q) of dy[n, k, p, q] * x[n, c, p*sh - ph + r, q*sw - pw + s].
// The reduction (N*OH*OW: 270k at batch 128 on the first layers) is long and M x N is small on
// the late layers, so it is split: blockIdx.z takes reduction range [z*chunk, (z+1)*chunk) and
// writes its partial sums to out[z] ([K][C*R*S]); a second kernel adds the partials in order
// (deterministic, no atomics). With one split, out is dw itself.
struct ConvWgradParams {
  const float* x;   // [N, C, H, W]
  const float* dy;  // [N, K, OH, OW]
  float* out;       // [splits][K][C*R*S]
  int n, c, h, w, k, oh, ow;
  int r, s, pad_h, pad_w, stride_h, stride_w;
  int crs, hw, ohw, l;  // l = n * ohw, the reduction length
  int chunk;            // reduction length per split, a multiple of BK
  int vec_store;        // crs % 4 == 0 and out 16-byte aligned
};

template <class T>
struct WgradIter {
  using Params = ConvWgradParams;
  // Both tiles are loaded with the reduction index fastest: thread kk = tid % BK reads reduction
  // step kk of rows/columns m0 + i * STEP, so 8 neighbouring threads read 8 neighbouring pixels.
  static constexpr int STEP = T::THREADS / T::BK;
  static constexpr int A_LOADS = T::BM / STEP, B_LOADS = T::BN / STEP;
  static_assert(T::THREADS % T::BK == 0 && T::BM % STEP == 0 && T::BN % STEP == 0,
                "whole rows and columns per pass");
  static constexpr int kFarAway = -(1 << 28);  // a filter tap that is never in the image

  int kk, m0;
  int l, l_end;
  int img, oy, ox;                        // l decomposed
  int tiles;
  int b_coff[B_LOADS], b_r[B_LOADS], b_s[B_LOADS];  // column (c, r, s) of each B load
  float a_reg[A_LOADS], b_reg[B_LOADS];

  __device__ __forceinline__ WgradIter(const Params& p, int block_m, int block_n, int split, int tid) {
    (void)block_m;
    kk = tid % T::BK;
    m0 = tid / T::BK;
    const int l_begin = split * p.chunk;
    l_end = min(p.l, l_begin + p.chunk);
    tiles = l_end > l_begin ? ceil_div(l_end - l_begin, T::BK) : 0;
    l = l_begin + kk;
    img = oy = ox = 0;
    if (l < p.l) {
      img = l / p.ohw;
      const int pix = l - img * p.ohw;
      oy = pix / p.ow;
      ox = pix - oy * p.ow;
    }
    const int rs = p.r * p.s;
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int col = block_n + m0 + i * STEP;
      if (col < p.crs) {
        const int c = col / rs, t = col - c * rs;
        b_coff[i] = c * p.hw;
        b_r[i] = t / p.s;
        b_s[i] = t - b_r[i] * p.s;
      } else {
        b_coff[i] = 0;
        b_r[i] = kFarAway;  // fails the bounds check below: the column loads zeros
        b_s[i] = 0;
      }
    }
  }

  __device__ __forceinline__ int k_tiles(const Params&) const { return tiles; }

  __device__ __forceinline__ void fetch(const Params& p, int block_m) {
    const bool ok = l < l_end;
    const int dy_base = img * p.k * p.ohw + oy * p.ow + ox;
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) {
      const int k = block_m + m0 + i * STEP;
      a_reg[i] = (ok && k < p.k) ? __ldg(p.dy + dy_base + k * p.ohw) : 0.0f;
    }
    const int hy = oy * p.stride_h - p.pad_h, wx = ox * p.stride_w - p.pad_w;
    const int x_base = img * p.c * p.hw;
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) {
      const int hi = hy + b_r[i], wi = wx + b_s[i];
      b_reg[i] = (ok && (unsigned)hi < (unsigned)p.h && (unsigned)wi < (unsigned)p.w)
                     ? __ldg(p.x + x_base + b_coff[i] + hi * p.w + wi)
                     : 0.0f;
    }
    // Step l by BK; the divisions run only when a row or an image is crossed.
    l += T::BK;
    ox += T::BK;
    if (ox >= p.ow) {
      const int q = ox / p.ow;
      ox -= q * p.ow;
      oy += q;
      if (oy >= p.oh) {
        const int q2 = oy / p.oh;
        oy -= q2 * p.oh;
        img += q2;
      }
    }
  }

  __device__ __forceinline__ void commit(float* As, float* Bs) const {
#pragma unroll
    for (int i = 0; i < A_LOADS; ++i) As[kk * T::LDA + m0 + i * STEP] = a_reg[i];
#pragma unroll
    for (int i = 0; i < B_LOADS; ++i) Bs[kk * T::LDB + m0 + i * STEP] = b_reg[i];
  }

  __device__ __forceinline__ void store(const Params& p, const float (&acc)[T::TM][T::TN], int block_m,
                                        int block_n, int tm, int tn, int split) const {
    float* out = p.out + (size_t)split * p.k * p.crs;
#pragma unroll
    for (int i = 0; i < T::TM; ++i) {
      const int m = block_m + (i / 4) * T::GROUP_M + tm * 4 + (i % 4);
      if (m >= p.k) continue;
      float* row = out + m * p.crs;
#pragma unroll
      for (int gj = 0; gj < T::TN / 4; ++gj) {
        const int n0 = block_n + gj * T::GROUP_N + tn * 4;
        if (p.vec_store && n0 + 3 < p.crs) {
          *reinterpret_cast<float4*>(row + n0) =
              make_float4(acc[i][gj * 4], acc[i][gj * 4 + 1], acc[i][gj * 4 + 2], acc[i][gj * 4 + 3]);
        } else {
#pragma unroll
          for (int e = 0; e < 4; ++e)
            if (n0 + e < p.crs) row[n0 + e] = acc[i][gj * 4 + e];
        }
      }
    }
  }
};

// ---- the kernel -----------------------------------------------------------------------------
// Grid: x over M tiles, y over N tiles, z over reduction splits (backward_weight only).
template <class T, class Iter>
__global__ void __launch_bounds__(T::THREADS) igemm_kernel(const typename Iter::Params p) {
  __shared__ __align__(16) float As[2][T::BK * T::LDA];
  __shared__ __align__(16) float Bs[2][T::BK * T::LDB];
  const int tid = threadIdx.x;
  const int block_m = blockIdx.x * T::BM, block_n = blockIdx.y * T::BN, split = blockIdx.z;
  const int tm = tid % T::THREADS_M, tn = tid / T::THREADS_M;
  Iter it(p, block_m, block_n, split, tid);

  float acc[T::TM][T::TN];
#pragma unroll
  for (int i = 0; i < T::TM; ++i)
#pragma unroll
    for (int j = 0; j < T::TN; ++j) acc[i][j] = 0.0f;

  const int tiles = it.k_tiles(p);
  if (tiles > 0) {
    it.fetch(p, block_m);
    it.commit(As[0], Bs[0]);
  }
  __syncthreads();
  for (int t = 0; t < tiles; ++t) {
    const int cur = t & 1;
    const bool more = t + 1 < tiles;
    if (more) it.fetch(p, block_m);  // in flight while this tile is multiplied
    const float* a_s = As[cur];
    const float* b_s = Bs[cur];
#pragma unroll
    for (int kk = 0; kk < T::BK; ++kk) {
      float a[T::TM], b[T::TN];
#pragma unroll
      for (int g = 0; g < T::TM / 4; ++g) {
        const float4 v = *reinterpret_cast<const float4*>(a_s + kk * T::LDA + g * T::GROUP_M + tm * 4);
        a[g * 4 + 0] = v.x;
        a[g * 4 + 1] = v.y;
        a[g * 4 + 2] = v.z;
        a[g * 4 + 3] = v.w;
      }
#pragma unroll
      for (int g = 0; g < T::TN / 4; ++g) {
        const float4 v = *reinterpret_cast<const float4*>(b_s + kk * T::LDB + g * T::GROUP_N + tn * 4);
        b[g * 4 + 0] = v.x;
        b[g * 4 + 1] = v.y;
        b[g * 4 + 2] = v.z;
        b[g * 4 + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < T::TM; ++i)
#pragma unroll
        for (int j = 0; j < T::TN; ++j) acc[i][j] = fmaf(a[i], b[j], acc[i][j]);
    }
    // The other buffer was last read in iteration t - 1, before the barrier that ended it.
    if (more) it.commit(As[cur ^ 1], Bs[cur ^ 1]);
    __syncthreads();
  }
  it.store(p, acc, block_m, block_n, tm, tn, split);
}

}  // namespace emotune::conv
