// conv2d_infer on the CPU (contract in kernels/conv2d_infer.h): im2col + sgemm with the epilogue
// applied per chunk of images, and Winograd F(2x2, 3x3) with the epilogue (and the 2x2 pool) in
// its output transform.
#include "kernels/conv2d_infer.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/runtime.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_packed.h"
#include "kernels/cpu/scratch.h"
#include "kernels/cpu/simd.h"

namespace emotune {

// The transforms are plain loops along tile rows (and across filters) that the compiler
// vectorises, compiled for AVX-512, AVX2 and baseline x86-64 (EMOTUNE_SIMD_CLONES).
namespace {

// The epilogue on n values of one output channel, in place: bias, ReLU, affine (both paths).
inline void finish(float* __restrict v, int n, float bias, bool relu, bool affine, float sc, float sh) {
  for (int q = 0; q < n; ++q) {
    float x = v[q] + bias;
    if (relu) x = !(x <= 0.0f) ? x : 0.0f;  // a NaN passes, as relu_forward lets it
    if (affine) x = x * sc + sh;
    v[q] = x;
  }
}

// Runs body() in an OpenMP region with OpenBLAS single-threaded inside it (each worker's sgemm
// on its own core); with one OpenMP thread, directly, leaving OpenBLAS its own threads.
template <typename F>
void parallel_region(F body) {
  if (omp_get_max_threads() > 1) {
    BlasSerialScope guard;
#pragma omp parallel
    body();
  } else {
    body();
  }
}

}  // namespace

// ------------------------------------------------------------------ im2col + sgemm
void conv2d_infer_im2col_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b,
                             const ConvEpilogue& e, float* y) {
  const int oh = p.out_h(), ow = p.out_w(), ph = e.out_h(p), pw = e.out_w(p);
  const int64_t plane = (int64_t)oh * ow, xs = (int64_t)p.c * p.h * p.w, ys = (int64_t)p.k * ph * pw;
  // Chunks of images whose conv output (~1 MB, at least one image per thread) stays in cache
  // for the epilogue pass.
  const int threads = omp_get_max_threads();
  const int per_chunk = std::max<int>(threads, (int)std::min<int64_t>(p.n, (1 << 18) / std::max<int64_t>(1, p.k * plane)));
  float* full = thread_scratch(Scratch::infer_output, (int64_t)std::min(per_chunk, p.n) * p.k * plane);
  for (int n0 = 0; n0 < p.n; n0 += per_chunk) {
    Conv2dShape q = p;
    q.n = std::min(per_chunk, p.n - n0);
    conv2d_forward_im2col_cpu(q, x + n0 * xs, w, b, full);
    const int64_t planes = (int64_t)q.n * p.k;
#pragma omp parallel for schedule(static) if (planes * plane > 32768)
    for (int64_t i = 0; i < planes; ++i) {
      const int k = (int)(i % p.k);
      float* src = full + i * plane;  // the bias is in already (conv2d_forward_im2col_cpu)
      finish(src, (int)plane, 0.0f, e.relu, e.scale != nullptr, e.scale ? e.scale[k] : 1.0f,
             e.scale ? e.shift[k] : 0.0f);
      float* dst = y + n0 * ys + i * ph * pw;
      if (!e.pool2) {
        std::copy(src, src + plane, dst);
        continue;
      }
      for (int py = 0; py < ph; ++py)
        for (int px = 0; px < pw; ++px) {
          const float* s = src + (2 * py) * ow + 2 * px;
          dst[py * pw + px] = std::max(std::max(s[0], s[1]), std::max(s[ow], s[ow + 1]));
        }
    }
  }
}

// ------------------------------------------------------------------ Winograd F(mxm, 3x3)
bool winograd_supported(const Conv2dShape& p) {
  return p.r == 3 && p.s == 3 && p.stride_h == 1 && p.stride_w == 1 && p.out_h() >= 1 && p.out_w() >= 1;
}

// The estimated time of a Winograd call, per tile size m, in units of one multiply-add: the
// products, (m+2)^2 * columns * K * C, the columns being the batch's tiles rounded up as the GEMM kernel pads them (exact up to 8, else to 16); reading the
// transformed filters, (m+2)^2 * K * C floats at ~13 multiply-adds' time each (~15 GB/s against
// ~100 GFLOP/s on one core: at batch 1 the late layers are bound by it); and the transforms, about
// (m+2)^2 * tiles * (K + C) * 8. F(4x4) needs a quarter of the tiles but 36 matrices instead of
// 16: it wins on the large early layers, on the small late ones only at large batches. Measured
// per layer at batch 1 (docs/benchmarks.md), the rule picks the faster tile on every layer but one
// near-tie (paper conv4); training (kernels/cpu/conv2d.cpp) uses the same rule.
namespace {
int64_t padded(int64_t t) { return t <= 8 ? t : (t + 15) / 16 * 16; }
}  // namespace

int64_t winograd_cost(const Conv2dShape& p, bool pool2, int m) {
  const int oh = pool2 ? p.out_h() / 2 : p.out_h(), ow = pool2 ? p.out_w() / 2 : p.out_w();
  const int per = pool2 ? m / 2 : m;
  const int64_t tiles = (int64_t)p.n * ((oh + per - 1) / per) * ((ow + per - 1) / per);
  const int64_t a2 = (int64_t)(m + 2) * (m + 2);
  return a2 * (padded(tiles) + 13) * p.k * p.c + a2 * tiles * (p.k + p.c) * 8;
}

int64_t winograd_weights_size(const Conv2dShape& p, int tile) {
  const int alpha = tile + 2;
  return (int64_t)alpha * alpha * packed_a_size(p.k, p.c);
}

namespace {

// The transform matrices (Lavin & Gray 2016), alpha = m + 2:
//   m = 2: G [4x3] = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1]
//          B^T [4x4] = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1],  A^T [2x4] = [1 1 1 0; 0 1 -1 -1]
//   m = 4: G [6x3] = [1/4 0 0; -1/6 -1/6 -1/6; -1/6 1/6 -1/6; 1/24 1/12 1/6; 1/24 -1/12 1/6; 0 0 1]
//          B^T [6x6] = [4 0 -5 0 1 0; 0 -4 -4 1 1 0; 0 4 -4 -1 1 0; 0 -2 -1 2 1 0; 0 2 -1 -2 1 0;
//                       0 4 0 -5 0 1]
//          A^T [4x6] = [1 1 1 1 1 0; 0 1 -1 2 -2 0; 0 1 1 4 4 0; 0 1 -1 8 -8 1]
// F(4x4) needs 36 products per 4x4 outputs and channel pair where F(2x2) needs 64; its constants
// are larger (B^T up to 5, A^T up to 8, G's sixths inexact in binary), so its rounding error is
// larger too: tests/test_conv2d_infer.cpp bounds both with the transforms' absolute values.

// G applied to columns of 3 values, 8 filters at once (the lanes), in double.
constexpr int kFilterLanes = 8;
inline void g_lanes(int m, const double* g0, const double* g1, const double* g2, double (*out)[kFilterLanes]) {
  for (int l = 0; l < kFilterLanes; ++l) {
    const double a = g0[l], b = g1[l], c = g2[l];
    if (m == 2) {
      out[0][l] = a;
      out[1][l] = 0.5 * (a + b + c);
      out[2][l] = 0.5 * (a - b + c);
      out[3][l] = c;
    } else {
      out[0][l] = a / 4;
      out[1][l] = -(a + b + c) / 6;
      out[2][l] = -(a - b + c) / 6;
      out[3][l] = a / 24 + b / 12 + c / 6;
      out[4][l] = a / 24 - b / 12 + c / 6;
      out[5][l] = c;
    }
  }
}

// U of filters (k, c0 .. c0 + 8) (lanes past p.c zero), u[xi][lane].
EMOTUNE_SIMD_CLONES void transform_filters(const Conv2dShape& p, const float* w, int k, int c0, bool turned,
                                             int m, double (*u)[kFilterLanes]) {
  const int alpha = m + 2;
  double g[9][kFilterLanes];
  for (int l = 0; l < kFilterLanes; ++l) {
    const int c = c0 + l;
    const float* src = c < p.c ? w + ((int64_t)k * p.c + c) * 9 : nullptr;
    for (int i = 0; i < 9; ++i) g[i][l] = src ? (double)src[turned ? 8 - i : i] : 0.0;
  }
  double t[3][6][kFilterLanes];  // t[j] = G (column j of g)
  for (int j = 0; j < 3; ++j) g_lanes(m, g[j], g[3 + j], g[6 + j], t[j]);
  double out[6][kFilterLanes];
  for (int i = 0; i < alpha; ++i) {  // (G g) G^T: row i of G g through G
    g_lanes(m, t[0][i], t[1][i], t[2][i], out);
    for (int j = 0; j < alpha; ++j)
      for (int l = 0; l < kFilterLanes; ++l) u[i * alpha + j][l] = out[j][l];
  }
}

}  // namespace

// U = G g G^T per filter, computed in double and rounded once, 8 filters at a time along c; each
// U_xi [K, C] (turned: [C, K] of the turned filters) written straight into gemm_packed_a's panels:
// element (row i, column j) of a [rows, cols] matrix at ((i / 8) * cols + j) * 8 + i % 8. The
// loops follow the panels (a panel's 8 rows, then its columns), so that the stores into the
// alpha^2 matrices fill whole cache lines in turn: stored filter by filter across panels, 16 or
// 36 scattered stores per filter cost 5% of a training step.
void winograd_weights(const Conv2dShape& p, const float* w, float* packed, int tile, bool turned) {
  const int alpha = tile + 2, xis = alpha * alpha;
  const int rows = turned ? p.c : p.k, cols = turned ? p.k : p.c;
  const int64_t plane = packed_a_size(rows, cols);
  if (rows % kPackRows)  // the zero rows that pad the last panel
    for (int xi = 0; xi < xis; ++xi)
      std::fill(packed + xi * plane + (int64_t)(rows / kPackRows) * kPackRows * cols, packed + (xi + 1) * plane, 0.0f);
  const int chunks = (p.c + kFilterLanes - 1) / kFilterLanes;
  if (turned) {  // a panel is 8 channels c (one chunk, the lanes); its columns are the k
#pragma omp parallel for schedule(static) if ((int64_t)p.k * p.c >= 4096 && !omp_in_parallel())
    for (int ch = 0; ch < chunks; ++ch) {
      const int c0 = ch * kFilterLanes, lanes = std::min(kFilterLanes, p.c - c0);
      double u[36][kFilterLanes];
      for (int k = 0; k < p.k; ++k) {
        transform_filters(p, w, k, c0, true, tile, u);
        float* at = packed + ((int64_t)ch * cols + k) * kPackRows;
        for (int xi = 0; xi < xis; ++xi)
          for (int l = 0; l < lanes; ++l) at[xi * plane + l] = (float)u[xi][l];
      }
    }
    return;
  }
  const int panels = (p.k + kPackRows - 1) / kPackRows;  // a panel is 8 filters k; its columns are the c
#pragma omp parallel for schedule(static) if ((int64_t)p.k * p.c >= 4096 && !omp_in_parallel())
  for (int pn = 0; pn < panels; ++pn) {
    double u[kPackRows][36][kFilterLanes];
    const int k0 = pn * kPackRows, ks = std::min(kPackRows, p.k - k0);
    for (int ch = 0; ch < chunks; ++ch) {
      const int c0 = ch * kFilterLanes, lanes = std::min(kFilterLanes, p.c - c0);
      for (int r = 0; r < ks; ++r) transform_filters(p, w, k0 + r, c0, false, tile, u[r]);
      float* at = packed + ((int64_t)pn * cols + c0) * kPackRows;
      for (int xi = 0; xi < xis; ++xi)
        for (int l = 0; l < lanes; ++l)
          for (int r = 0; r < ks; ++r) at[xi * plane + l * kPackRows + r] = (float)u[r][xi][l];
    }
  }
}

namespace {

// Tiles go through the GEMMs in blocks of whole tile rows (one image's row of tiles_w output
// tiles), so that both transforms run along contiguous rows and vectorise.
struct WinogradPlan {
  int m, alpha;          // output tile m x m, input tile alpha x alpha
  int tiles_h, tiles_w;  // output tiles per image (with pool2: covering the pooled output)
  int64_t rows;          // tile rows over the batch: n * tiles_h
  int rows_per_block;
  int block;             // tiles per block: rows_per_block * tiles_w
};

WinogradPlan winograd_plan(const Conv2dShape& p, const ConvEpilogue& e, int m) {
  WinogradPlan w;
  w.m = m;
  w.alpha = m + 2;
  // With pool2 a tile yields (m/2)^2 pooled outputs; tiles cover the pooled output (floor mode).
  const int ph = p.out_h() / 2, pw = p.out_w() / 2, half = m / 2;
  w.tiles_h = e.pool2 ? (ph + half - 1) / half : (p.out_h() + m - 1) / m;
  w.tiles_w = e.pool2 ? (pw + half - 1) / half : (p.out_w() + m - 1) / m;
  w.rows = (int64_t)p.n * w.tiles_h;
  // V [alpha^2, C, block] and M [alpha^2, K, block] together about 4 MB (second-level cache and
  // some of the third).
  const int64_t fit = (4 << 20) / ((int64_t)w.alpha * w.alpha * 4 * (int64_t)(p.c + p.k));
  const int64_t tiles = std::clamp<int64_t>(fit, 16, 1024);
  w.rows_per_block = (int)std::clamp<int64_t>(tiles / std::max(1, w.tiles_w), 1, std::max<int64_t>(1, w.rows));
  w.block = w.rows_per_block * w.tiles_w;
  return w;
}

// The transforms' inner loops, on pointers passed as __restrict parameters: GCC vectorises these
// (it does not for the same loops on block-scope restrict pointers; fopt-info says "no vectype").
// Each applies one matrix (B^T or A^T) to a column of rows: out_i[q] = sum_j T_ij in_j[q].
inline void bt2(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                const float* __restrict d3, float* __restrict r0, float* __restrict r1, float* __restrict r2,
                float* __restrict r3, int n) {
  for (int q = 0; q < n; ++q) {
    r0[q] = d0[q] - d2[q];
    r1[q] = d1[q] + d2[q];
    r2[q] = d2[q] - d1[q];
    r3[q] = d1[q] - d3[q];
  }
}

inline void bt4(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                const float* __restrict d3, const float* __restrict d4, const float* __restrict d5,
                float* __restrict r0, float* __restrict r1, float* __restrict r2, float* __restrict r3,
                float* __restrict r4, float* __restrict r5, int n) {
  for (int q = 0; q < n; ++q) {
    r0[q] = 4.0f * d0[q] - 5.0f * d2[q] + d4[q];
    r1[q] = -4.0f * (d1[q] + d2[q]) + d3[q] + d4[q];
    r2[q] = 4.0f * (d1[q] - d2[q]) - d3[q] + d4[q];
    r3[q] = -2.0f * (d1[q] - d3[q]) - d2[q] + d4[q];
    r4[q] = 2.0f * (d1[q] - d3[q]) - d2[q] + d4[q];
    r5[q] = 4.0f * d1[q] - 5.0f * d3[q] + d5[q];
  }
}

inline void at2(const float* __restrict a0, const float* __restrict a1, const float* __restrict a2,
                const float* __restrict a3, float* __restrict s0, float* __restrict s1, int n) {
  for (int q = 0; q < n; ++q) {
    s0[q] = a0[q] + a1[q] + a2[q];
    s1[q] = a1[q] - a2[q] - a3[q];
  }
}

inline void at4(const float* __restrict a0, const float* __restrict a1, const float* __restrict a2,
                const float* __restrict a3, const float* __restrict a4, const float* __restrict a5,
                float* __restrict s0, float* __restrict s1, float* __restrict s2, float* __restrict s3, int n) {
  for (int q = 0; q < n; ++q) {
    const float p12 = a1[q] + a2[q], m12 = a1[q] - a2[q], p34 = a3[q] + a4[q], m34 = a3[q] - a4[q];
    s0[q] = p12 + p34 + a0[q];
    s1[q] = m12 + 2.0f * m34;
    s2[q] = p12 + 4.0f * p34;
    s3[q] = m12 + 8.0f * m34 + a5[q];
  }
}


inline void max2(const float* __restrict a, const float* __restrict b, float* __restrict out, int n) {
  for (int q = 0; q < n; ++q) out[q] = std::max(a[q], b[q]);
}


// Scratch of one worker: enough for any of the transforms: row buffers, plus matrices over the
// block's tiles (alpha^2 columns for the input transform, m * alpha + m^2 for the output).
int64_t transform_scratch(const WinogradPlan& w) {
  return (int64_t)(4 * w.alpha * w.alpha + 8) * (w.tiles_w + 2) + (int64_t)2 * w.alpha * w.alpha * (w.block + 1);
}

// phases[r * stride + q] = row[M q + r] for q < len: a row split by column phase. M is a
// constant, so the compiler turns the loop into whole-vector loads and permutes.
template <int M>
[[gnu::always_inline]] inline void split_phases(const float* __restrict row, float* __restrict phases, int64_t stride,
                                                int len) {
  for (int q = 0; q < len; ++q)
    for (int r = 0; r < M; ++r) phases[r * stride + q] = row[M * q + r];
}

// For channel c and tile rows [r0, r0 + nr): V[xi][c][t] = (B^T d B)[xi] of each tile's alpha x
// alpha input patch d, zero outside the image. Per tile row: the alpha input rows are copied into
// zero-padded rows of M * (tiles_w + 1) columns (column u is image column u - pad) and B^T runs
// down them; each result row i is split by column phase (column M q + r in phase r), which gives
// column r of every tile at q = tx, and column M + r at q = tx + 1: cols[i][q] holds column q of
// row i of B^T d for all the block's tiles side by side. Then B runs across, over the whole block
// at once (a tile row alone is as short as 3 tiles on the 11x11 layers).
template <int M>
[[gnu::always_inline]] inline void input_transform_m(const Conv2dShape& p, const WinogradPlan& w, const float* x,
                                                     int64_t r0, int nr, int c, float* v, int64_t ld_xi,
                                                     float* tmp) {
  constexpr int alpha = M + 2;
  const int tw = w.tiles_w, len = tw + 1, wp = M * len;
  const int64_t tb = (int64_t)nr * tw, cs = tb + 1;  // a column of the block (+1: split_phases writes len)
  float* rows = tmp;                   // alpha padded input rows of wp
  float* bt = rows + alpha * wp;       // alpha rows of B^T d
  float* cols = bt + alpha * wp;       // alpha x alpha columns of cs
  // Columns [lo, hi) of a padded row lie inside the image.
  const int lo = std::min(wp, p.pad_w), hi = std::max(lo, std::min(wp, p.pad_w + p.w));
  int64_t n = r0 / w.tiles_h;
  int ty = (int)(r0 % w.tiles_h);
  for (int j = 0; j < nr; ++j) {
    const float* xc = x + (n * p.c + c) * (int64_t)p.h * p.w;
    for (int i = 0; i < alpha; ++i) {
      float* dst = rows + i * wp;
      const int iy = M * ty - p.pad_h + i;
      if (iy < 0 || iy >= p.h) {
        std::fill(dst, dst + wp, 0.0f);
        continue;
      }
      std::fill(dst, dst + lo, 0.0f);
      std::copy(xc + (int64_t)iy * p.w + (lo - p.pad_w), xc + (int64_t)iy * p.w + (hi - p.pad_w), dst + lo);
      std::fill(dst + hi, dst + wp, 0.0f);
    }
    if constexpr (M == 2)
      bt2(rows, rows + wp, rows + 2 * wp, rows + 3 * wp, bt, bt + wp, bt + 2 * wp, bt + 3 * wp, wp);
    else
      bt4(rows, rows + wp, rows + 2 * wp, rows + 3 * wp, rows + 4 * wp, rows + 5 * wp, bt, bt + wp, bt + 2 * wp,
          bt + 3 * wp, bt + 4 * wp, bt + 5 * wp, wp);
    for (int i = 0; i < alpha; ++i) {
      float* ci = cols + (int64_t)i * alpha * cs + (int64_t)j * tw;
      split_phases<M>(bt + i * wp, ci, cs, len);  // columns 0..M-1 (and one past this row's tiles)
      for (int r = 0; r < alpha - M; ++r)         // columns M..alpha-1: phase r one tile later
        std::copy(ci + r * cs + 1, ci + r * cs + 1 + tw, ci + (M + r) * cs);
    }
    if (++ty == w.tiles_h) {
      ty = 0;
      ++n;
    }
  }
  float* vc = v + (int64_t)c * w.block;
  for (int i = 0; i < alpha; ++i) {  // (B^T d) B across the tiles' rows
    const float* ci = cols + (int64_t)i * alpha * cs;
    float* out = vc + (int64_t)(i * alpha) * ld_xi;
    if constexpr (M == 2)
      bt2(ci, ci + cs, ci + 2 * cs, ci + 3 * cs, out, out + ld_xi, out + 2 * ld_xi, out + 3 * ld_xi, (int)tb);
    else
      bt4(ci, ci + cs, ci + 2 * cs, ci + 3 * cs, ci + 4 * cs, ci + 5 * cs, out, out + ld_xi, out + 2 * ld_xi,
          out + 3 * ld_xi, out + 4 * ld_xi, out + 5 * ld_xi, (int)tb);
  }
}

EMOTUNE_SIMD_CLONES void input_transform2(const Conv2dShape& p, const WinogradPlan& w, const float* x,
                                               int64_t r0, int nr, int c, float* v, int64_t ld_xi, float* tmp) {
  input_transform_m<2>(p, w, x, r0, nr, c, v, ld_xi, tmp);
}
EMOTUNE_SIMD_CLONES void input_transform4(const Conv2dShape& p, const WinogradPlan& w, const float* x,
                                               int64_t r0, int nr, int c, float* v, int64_t ld_xi, float* tmp) {
  input_transform_m<4>(p, w, x, r0, nr, c, v, ld_xi, tmp);
}
inline void input_transform(const Conv2dShape& p, const WinogradPlan& w, const float* x, int64_t r0, int nr, int c,
                            float* v, int64_t ld_xi, float* tmp) {
  if (w.m == 2)
    input_transform2(p, w, x, r0, nr, c, v, ld_xi, tmp);
  else
    input_transform4(p, w, x, r0, nr, c, v, ld_xi, tmp);
}

// row[M q + r] = phases[r * stride + q] for q < len: the inverse of split_phases.
template <int M>
[[gnu::always_inline]] inline void merge_phases(const float* __restrict phases, int64_t stride, float* __restrict row,
                                                int len) {
  for (int q = 0; q < len; ++q)
    for (int r = 0; r < M; ++r) row[M * q + r] = phases[r * stride + q];
}

// For channel k and tile rows [r0, r0 + nr): Y = A^T M A per tile, then bias and the epilogue; the
// M x M tile is pooled (2x2) or stored, clipped at the bottom and right edges. A^T runs over the
// whole block's tiles at once; o[i][jj] holds output row i, column jj of every tile, and each tile
// row's output rows are merged from those column phases before they are stored.
template <int M>
[[gnu::always_inline]] inline void output_transform_m(const Conv2dShape& p, const ConvEpilogue& e,
                                                      const WinogradPlan& w, const float* mm, int64_t ld_xi,
                                                      const float* b, int64_t r0, int nr, int k, float* y,
                                                      float* tmp) {
  constexpr int alpha = M + 2, half = M / 2;
  const int tw = w.tiles_w, oh = p.out_h(), ow = p.out_w(), ph = e.out_h(p), pw = e.out_w(p);
  const int64_t tb = (int64_t)nr * tw;
  const float bias = b ? b[k] : 0.0f;
  const bool relu = e.relu, affine = e.scale != nullptr;
  const float sc = affine ? e.scale[k] : 1.0f, sh = affine ? e.shift[k] : 0.0f;
  float* s = tmp;                   // A^T M: M rows x alpha columns of tb
  float* o = s + M * alpha * tb;    // (A^T M) A: M x M of tb
  float* pr = o + M * M * tb;       // one pooled row pair: M phases of tw
  float* line = pr + M * tw;        // one merged output row: M * tw
  float* pooled = line + M * tw;    // one pooled row: half phases of tw
  const float* mk = mm + (int64_t)k * w.block;
  for (int c = 0; c < alpha; ++c) {  // A^T down column c of the tiles
    const float* a[alpha];
    for (int i = 0; i < alpha; ++i) a[i] = mk + (int64_t)(i * alpha + c) * ld_xi;
    if constexpr (M == 2)
      at2(a[0], a[1], a[2], a[3], s + c * tb, s + (alpha + c) * tb, (int)tb);
    else
      at4(a[0], a[1], a[2], a[3], a[4], a[5], s + c * tb, s + (alpha + c) * tb, s + (2 * alpha + c) * tb,
          s + (3 * alpha + c) * tb, (int)tb);
  }
  for (int i = 0; i < M; ++i) {  // then across each of their M rows
    const float* si = s + i * alpha * tb;
    float* oi = o + i * M * tb;  // o[i][jj] at oi + jj * tb
    if constexpr (M == 2)
      at2(si, si + tb, si + 2 * tb, si + 3 * tb, oi, oi + tb, (int)tb);
    else
      at4(si, si + tb, si + 2 * tb, si + 3 * tb, si + 4 * tb, si + 5 * tb, oi, oi + tb, oi + 2 * tb, oi + 3 * tb,
          (int)tb);
  }
  finish(o, (int)(M * M * tb), bias, relu, affine, sc, sh);
  int64_t n = r0 / w.tiles_h;
  int ty = (int)(r0 % w.tiles_h);
  for (int j = 0; j < nr; ++j) {
    const float* oj = o + (int64_t)j * tw;
    if (e.pool2) {
      for (int pi = 0; pi < half; ++pi) {
        const int py = ty * half + pi;
        if (py >= ph) break;
        // max over output rows 2pi, 2pi+1, then over column pairs: pooled column tx * half + pj
        for (int jj = 0; jj < M; ++jj)
          max2(oj + ((2 * pi) * M + jj) * tb, oj + ((2 * pi + 1) * M + jj) * tb, pr + jj * tw, tw);
        for (int pj = 0; pj < half; ++pj) max2(pr + (2 * pj) * tw, pr + (2 * pj + 1) * tw, pooled + pj * tw, tw);
        merge_phases<half>(pooled, tw, line, tw);
        std::copy(line, line + pw, y + ((n * p.k + k) * ph + py) * (int64_t)pw);
      }
    } else {
      float* yk = y + (n * p.k + k) * (int64_t)oh * ow;
      for (int i = 0; i < M && M * ty + i < oh; ++i) {
        merge_phases<M>(oj + i * M * tb, tb, line, tw);
        std::copy(line, line + ow, yk + (int64_t)(M * ty + i) * ow);
      }
    }
    if (++ty == w.tiles_h) {
      ty = 0;
      ++n;
    }
  }
}

EMOTUNE_SIMD_CLONES void output_transform2(const Conv2dShape& p, const ConvEpilogue& e, const WinogradPlan& w,
                                                const float* mm, int64_t ld_xi, const float* b, int64_t r0, int nr,
                                                int k, float* y, float* tmp) {
  output_transform_m<2>(p, e, w, mm, ld_xi, b, r0, nr, k, y, tmp);
}
EMOTUNE_SIMD_CLONES void output_transform4(const Conv2dShape& p, const ConvEpilogue& e, const WinogradPlan& w,
                                                const float* mm, int64_t ld_xi, const float* b, int64_t r0, int nr,
                                                int k, float* y, float* tmp) {
  output_transform_m<4>(p, e, w, mm, ld_xi, b, r0, nr, k, y, tmp);
}
inline void output_transform(const Conv2dShape& p, const ConvEpilogue& e, const WinogradPlan& w, const float* mm,
                             int64_t ld_xi, const float* b, int64_t r0, int nr, int k, float* y, float* tmp) {
  if (w.m == 2)
    output_transform2(p, e, w, mm, ld_xi, b, r0, nr, k, y, tmp);
  else
    output_transform4(p, e, w, mm, ld_xi, b, r0, nr, k, y, tmp);
}

// A (the transpose of A^T) on a column of m rows, for backward-weight's A dY A^T:
//   m = 2: A [4x2] = [1 0; 1 1; 1 -1; 0 -1]
//   m = 4: A [6x4] = [1 0 0 0; 1 1 1 1; 1 -1 1 -1; 1 2 4 8; 1 -2 4 -8; 0 0 0 1]
inline void a2(const float* __restrict s0, const float* __restrict s1, float* __restrict r0, float* __restrict r1,
               float* __restrict r2, float* __restrict r3, int n) {
  for (int q = 0; q < n; ++q) {
    r0[q] = s0[q];
    r1[q] = s0[q] + s1[q];
    r2[q] = s0[q] - s1[q];
    r3[q] = -s1[q];
  }
}

inline void a4(const float* __restrict s0, const float* __restrict s1, const float* __restrict s2,
               const float* __restrict s3, float* __restrict r0, float* __restrict r1, float* __restrict r2,
               float* __restrict r3, float* __restrict r4, float* __restrict r5, int n) {
  for (int q = 0; q < n; ++q) {
    const float e = s0[q] + s2[q], o = s1[q] + s3[q], e4 = s0[q] + 4.0f * s2[q], o4 = 2.0f * s1[q] + 8.0f * s3[q];
    r0[q] = s0[q];
    r1[q] = e + o;
    r2[q] = e - o;
    r3[q] = e4 + o4;
    r4[q] = e4 - o4;
    r5[q] = s3[q];
  }
}

// For output channel k and tile rows [r0, r0 + nr): D[xi][k][t] = (A dY A^T)[xi] of each tile's
// M x M block of dy, zero past the bottom and right edges (those outputs do not exist: their
// gradient is 0). Each dy row is copied into a zero-padded row of M * tiles_w and split by column
// phase (column M tx + jj in phase jj, the block's tiles side by side); then A runs across and
// down over the whole block at once.
template <int M>
[[gnu::always_inline]] inline void dy_transform_m(const Conv2dShape& p, const WinogradPlan& w, const float* dy,
                                                  int64_t r0, int nr, int k, float* d, int64_t ld_xi, float* tmp) {
  constexpr int alpha = M + 2;
  const int tw = w.tiles_w, oh = p.out_h(), ow = p.out_w(), wp = M * tw;
  const int64_t tb = (int64_t)nr * tw;
  float* s = tmp;                    // M rows x M phases of tb
  float* t = s + M * M * tb;         // M rows x alpha columns of tb: A across each row
  float* line = t + M * alpha * tb;  // one zero-padded dy row of wp
  std::fill(line + ow, line + wp, 0.0f);
  int64_t n = r0 / w.tiles_h;
  int ty = (int)(r0 % w.tiles_h);
  for (int j = 0; j < nr; ++j) {
    const float* dyk = dy + (n * p.k + k) * (int64_t)oh * ow;
    for (int i = 0; i < M; ++i) {
      const int oy = M * ty + i;
      float* si = s + (int64_t)i * M * tb + (int64_t)j * tw;
      if (oy >= oh) {
        for (int jj = 0; jj < M; ++jj) std::fill(si + jj * tb, si + jj * tb + tw, 0.0f);
      } else {
        std::copy(dyk + (int64_t)oy * ow, dyk + (int64_t)oy * ow + ow, line);
        split_phases<M>(line, si, tb, tw);
      }
    }
    if (++ty == w.tiles_h) {
      ty = 0;
      ++n;
    }
  }
  for (int i = 0; i < M; ++i) {  // A across each row of the tiles
    const float* si = s + (int64_t)i * M * tb;
    float* ti = t + (int64_t)i * alpha * tb;
    if constexpr (M == 2)
      a2(si, si + tb, ti, ti + tb, ti + 2 * tb, ti + 3 * tb, (int)tb);
    else
      a4(si, si + tb, si + 2 * tb, si + 3 * tb, ti, ti + tb, ti + 2 * tb, ti + 3 * tb, ti + 4 * tb, ti + 5 * tb,
         (int)tb);
  }
  float* dk = d + (int64_t)k * w.block;
  const int64_t step = (int64_t)alpha * ld_xi;  // from D[a][b] to D[a+1][b]
  for (int b = 0; b < alpha; ++b) {  // then down column b: D[a][b] = sum_i A[a][i] t[i][b]
    float* o = dk + (int64_t)b * ld_xi;
    if constexpr (M == 2)
      a2(t + b * tb, t + (alpha + b) * tb, o, o + step, o + 2 * step, o + 3 * step, (int)tb);
    else
      a4(t + b * tb, t + (alpha + b) * tb, t + (2 * alpha + b) * tb, t + (3 * alpha + b) * tb, o, o + step,
         o + 2 * step, o + 3 * step, o + 4 * step, o + 5 * step, (int)tb);
  }
}

EMOTUNE_SIMD_CLONES void dy_transform2(const Conv2dShape& p, const WinogradPlan& w, const float* dy, int64_t r0,
                                            int nr, int k, float* d, int64_t ld_xi, float* tmp) {
  dy_transform_m<2>(p, w, dy, r0, nr, k, d, ld_xi, tmp);
}
EMOTUNE_SIMD_CLONES void dy_transform4(const Conv2dShape& p, const WinogradPlan& w, const float* dy, int64_t r0,
                                            int nr, int k, float* d, int64_t ld_xi, float* tmp) {
  dy_transform_m<4>(p, w, dy, r0, nr, k, d, ld_xi, tmp);
}
inline void dy_transform(const Conv2dShape& p, const WinogradPlan& w, const float* dy, int64_t r0, int nr, int k,
                         float* d, int64_t ld_xi, float* tmp) {
  if (w.m == 2)
    dy_transform2(p, w, dy, r0, nr, k, d, ld_xi, tmp);
  else
    dy_transform4(p, w, dy, r0, nr, k, d, ld_xi, tmp);
}

// G^T on a column of alpha rows (each n long) -> 3 rows: the adjoint of g_lanes' G.
inline void gt_rows(int m, const float* const* in, int64_t n, float* __restrict o0, float* __restrict o1,
                    float* __restrict o2) {
  if (m == 2) {
    const float* __restrict i0 = in[0];
    const float* __restrict i1 = in[1];
    const float* __restrict i2 = in[2];
    const float* __restrict i3 = in[3];
    for (int64_t q = 0; q < n; ++q) {
      const float h = 0.5f * (i1[q] + i2[q]);
      o0[q] = i0[q] + h;
      o1[q] = 0.5f * (i1[q] - i2[q]);
      o2[q] = h + i3[q];
    }
  } else {
    const float* __restrict i0 = in[0];
    const float* __restrict i1 = in[1];
    const float* __restrict i2 = in[2];
    const float* __restrict i3 = in[3];
    const float* __restrict i4 = in[4];
    const float* __restrict i5 = in[5];
    for (int64_t q = 0; q < n; ++q) {
      const float s12 = i1[q] + i2[q], d12 = i2[q] - i1[q], s34 = i3[q] + i4[q], d34 = i3[q] - i4[q];
      o0[q] = 0.25f * i0[q] - s12 * (1.0f / 6) + s34 * (1.0f / 24);
      o1[q] = d12 * (1.0f / 6) + d34 * (1.0f / 12);
      o2[q] = (s34 - s12) * (1.0f / 6) + i5[q];
    }
  }
}

// dw[k] (all c) = G^T dU[:, k, :] G, with dU [alpha^2, K, C].
EMOTUNE_SIMD_CLONES void filter_gradients(const Conv2dShape& p, int m, const float* du, int k, float* dw,
                                               float* tmp) {
  const int alpha = m + 2;
  const int64_t kc = (int64_t)p.k * p.c;
  float* t = tmp;  // t[r][b][c] = sum_a G[a][r] dU[a][b][k][c]: 3 x alpha rows of C
  for (int b = 0; b < alpha; ++b) {
    const float* in[6];
    for (int a = 0; a < alpha; ++a) in[a] = du + (int64_t)(a * alpha + b) * kc + (int64_t)k * p.c;
    gt_rows(m, in, p.c, t + (0 * alpha + b) * p.c, t + (1 * alpha + b) * p.c, t + (2 * alpha + b) * p.c);
  }
  float* o = tmp + 3 * alpha * p.c;  // o[r][s][c] = sum_b t[r][b][c] G[b][s]
  for (int r = 0; r < 3; ++r) {
    const float* in[6];
    for (int b = 0; b < alpha; ++b) in[b] = t + (r * alpha + b) * p.c;
    gt_rows(m, in, p.c, o + (r * 3 + 0) * p.c, o + (r * 3 + 1) * p.c, o + (r * 3 + 2) * p.c);
  }
  float* dwk = dw + (int64_t)k * p.c * 9;
  for (int c = 0; c < p.c; ++c)
    for (int i = 0; i < 9; ++i) dwk[c * 9 + i] = o[i * p.c + c];
}

}  // namespace

struct WinogradBf16Weights {
  std::vector<Bf16PackedA> xi;  // one per matrix xi of U
};

std::shared_ptr<const WinogradBf16Weights> winograd_weights_bf16(const Conv2dShape& p, const float* u) {
  if (!cpu_gemm_runs_bf16(p.c)) return nullptr;
  auto r = std::make_shared<WinogradBf16Weights>();
  const int64_t kc = packed_a_size(p.k, p.c);
  for (int xi = 0; xi < 16; ++xi) r->xi.push_back(gemm_bf16_prepare_a(p.k, p.c, u + xi * kc));
  return r;
}

void conv2d_infer_winograd_cpu(const Conv2dShape& p, const float* x, const float* u, const float* b,
                               const ConvEpilogue& e, float* y, int tile, const WinogradBf16Weights* ub) {
  const WinogradPlan w = winograd_plan(p, e, tile);
  if (w.rows == 0 || w.tiles_w == 0) return;
  const int xis = w.alpha * w.alpha;
  // Per block: V and M hold the alpha^2 matrices side by side, xi-major: V[xi] is [C, block].
  const int64_t ldv = (int64_t)p.c * w.block, ldm = (int64_t)p.k * w.block;
  float* v = thread_scratch(Scratch::winograd_v, xis * ldv);
  float* m = thread_scratch(Scratch::winograd_m, xis * ldm);
  const int64_t kc = packed_a_size(p.k, p.c);
  const bool prepared = ub && tile == 2 && (int)ub->xi.size() == xis;  // cpu_gemm_packed_a decides if it is used
  parallel_region([&] {
    std::vector<float> tmp((size_t)transform_scratch(w));  // per worker: the row buffers
    for (int64_t r0 = 0; r0 < w.rows; r0 += w.rows_per_block) {
      const int nr = (int)std::min<int64_t>(w.rows_per_block, w.rows - r0);
      const int tb = nr * w.tiles_w;
      // Dynamic schedules: a worker that the OS preempts (another process on the core) holds up
      // only the item it is on, not half of the work. Each item is computed whole by one
      // thread, so the results do not depend on the schedule.
#pragma omp for schedule(dynamic, 4)
      for (int c = 0; c < p.c; ++c) input_transform(p, w, x, r0, nr, c, v, ldv, tmp.data());
#pragma omp for schedule(dynamic, 1)
      for (int xi = 0; xi < xis; ++xi)
        cpu_gemm_packed_a(p.k, tb, p.c, u + xi * kc, v + xi * ldv, w.block, m + xi * ldm, w.block,
                          prepared ? &ub->xi[xi] : nullptr);
#pragma omp for schedule(dynamic, 4)
      for (int k = 0; k < p.k; ++k) output_transform(p, e, w, m, ldm, b, r0, nr, k, y, tmp.data());
    }
  });
}

// dW through the same tiles (Lavin & Gray 2016, section 4): Y = A^T [U . V] A per tile makes
//   dL/dU_xi [K, C] = sum over tiles of D_xi [K, T] V_xi [C, T]^T,  D = A dY A^T per tile,
//   dw = G^T dU G per filter,
// (alpha^2) products of K x C over the tiles instead of im2col's one of K x 9C over the pixels: 16
// against 36 multiply-adds per 2x2 outputs and channel pair for m = 2. The products run through
// OpenBLAS (their reduction axis, the tiles, is long; packing is a small part), one matrix xi per
// worker, each summed over the blocks in block order: the result does not depend on the threads.
void conv2d_backward_weight_winograd_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw, int tile) {
  const WinogradPlan w = winograd_plan(p, ConvEpilogue{}, tile);
  const int xis = w.alpha * w.alpha;
  const int64_t kc = (int64_t)p.k * p.c;
  float* du = thread_scratch(Scratch::winograd_du, xis * kc);
  if (w.rows == 0 || w.tiles_w == 0) {
    std::fill(dw, dw + p.w_size(), 0.0f);
    return;
  }
  const int64_t ldv = (int64_t)p.c * w.block, ldd = (int64_t)p.k * w.block;
  float* v = thread_scratch(Scratch::winograd_v, xis * ldv);
  float* d = thread_scratch(Scratch::winograd_m, xis * ldd);
  parallel_region([&] {
    std::vector<float> tmp((size_t)std::max<int64_t>(transform_scratch(w), 3 * (w.alpha + 3) * (int64_t)p.c));
    for (int64_t r0 = 0; r0 < w.rows; r0 += w.rows_per_block) {
      const int nr = (int)std::min<int64_t>(w.rows_per_block, w.rows - r0);
      const int tb = nr * w.tiles_w;
#pragma omp for schedule(dynamic, 4)
      for (int c = 0; c < p.c; ++c) input_transform(p, w, x, r0, nr, c, v, ldv, tmp.data());
#pragma omp for schedule(dynamic, 4)
      for (int k = 0; k < p.k; ++k) dy_transform(p, w, dy, r0, nr, k, d, ldd, tmp.data());
#pragma omp for schedule(dynamic, 1)
      for (int xi = 0; xi < xis; ++xi)
        cpu_gemm(false, true, p.k, p.c, tb, d + xi * ldd, w.block, v + xi * ldv, w.block, r0 == 0 ? 0.0f : 1.0f, du + xi * kc, p.c);
    }
#pragma omp for schedule(static)
    for (int k = 0; k < p.k; ++k) filter_gradients(p, w.m, du, k, dw, tmp.data());
  });
}

}  // namespace emotune
