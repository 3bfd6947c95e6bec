// conv2d_infer on the CPU (contract in kernels/conv2d_infer.h): im2col + sgemm with the epilogue
// applied per chunk of images, and Winograd F(2x2, 3x3) with the epilogue (and the 2x2 pool) in
// its output transform.
#include "kernels/conv2d_infer.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/gemm_packed.h"

namespace emotune {

namespace {

inline float epilogue(const ConvEpilogue& e, int k, float v) {
  if (e.relu) v = v > 0.0f ? v : 0.0f;
  if (e.scale) v = v * e.scale[k] + e.shift[k];
  return v;
}

// Scratch owned by the calling thread (the OpenMP workers only index into it); kept between
// calls so that a forward pass does not fault in fresh pages for every layer.
float* scratch(int slot, int64_t n) {
  thread_local std::vector<float> buf[2];
  if ((int64_t)buf[slot].size() < n) buf[slot].resize((size_t)n);
  return buf[slot].data();
}

// Runs body() in an OpenMP region with OpenBLAS single-threaded inside it (each worker's sgemm
// on its own core); with one OpenMP thread, directly, leaving OpenBLAS its own threads.
template <typename F>
void parallel_region(F body) {
  if (omp_get_max_threads() > 1) {
    BlasSingleThread guard;
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
  float* full = scratch(0, (int64_t)std::min(per_chunk, p.n) * p.k * plane);
  for (int n0 = 0; n0 < p.n; n0 += per_chunk) {
    Conv2dShape q = p;
    q.n = std::min(per_chunk, p.n - n0);
    conv2d_forward_cpu(q, x + n0 * xs, w, b, full);
    const int64_t planes = (int64_t)q.n * p.k;
#pragma omp parallel for schedule(static) if (planes * plane > 32768)
    for (int64_t i = 0; i < planes; ++i) {
      const int k = (int)(i % p.k);
      const float* src = full + i * plane;
      float* dst = y + n0 * ys + i * ph * pw;
      if (!e.pool2) {
        for (int64_t j = 0; j < plane; ++j) dst[j] = epilogue(e, k, src[j]);
        continue;
      }
      for (int py = 0; py < ph; ++py)
        for (int px = 0; px < pw; ++px) {
          const float* s = src + (2 * py) * ow + 2 * px;
          const float a = epilogue(e, k, s[0]), c = epilogue(e, k, s[1]);
          const float d = epilogue(e, k, s[ow]), f = epilogue(e, k, s[ow + 1]);
          dst[py * pw + px] = std::max(std::max(a, c), std::max(d, f));
        }
    }
  }
}

// ------------------------------------------------------------------ Winograd F(2x2, 3x3)
bool winograd_supported(const Conv2dShape& p) {
  return p.r == 3 && p.s == 3 && p.stride_h == 1 && p.stride_w == 1 && p.out_h() >= 1 && p.out_w() >= 1;
}

int64_t winograd_weights_size(const Conv2dShape& p) { return 16 * packed_a_size(p.k, p.c); }

// U = G g G^T, G = [1 0 0; 1/2 1/2 1/2; 1/2 -1/2 1/2; 0 0 1] (the halves are exact in binary);
// U_xi [K, C] is then packed for gemm_packed_a.
void winograd_weights(const Conv2dShape& p, const float* w, float* packed) {
  const int64_t kc = (int64_t)p.k * p.c;
  std::vector<float> plain((size_t)(16 * kc));
  float* u = plain.data();
  for (int k = 0; k < p.k; ++k)
    for (int c = 0; c < p.c; ++c) {
      const float* g = w + ((int64_t)k * p.c + c) * 9;
      float t[4][3];  // G g
      for (int j = 0; j < 3; ++j) {
        t[0][j] = g[j];
        t[1][j] = 0.5f * (g[j] + g[3 + j] + g[6 + j]);
        t[2][j] = 0.5f * (g[j] - g[3 + j] + g[6 + j]);
        t[3][j] = g[6 + j];
      }
      for (int i = 0; i < 4; ++i) {  // (G g) G^T
        const float r[4] = {t[i][0], 0.5f * (t[i][0] + t[i][1] + t[i][2]), 0.5f * (t[i][0] - t[i][1] + t[i][2]),
                            t[i][2]};
        for (int j = 0; j < 4; ++j) u[(i * 4 + j) * kc + (int64_t)k * p.c + c] = r[j];
      }
    }
  for (int xi = 0; xi < 16; ++xi) pack_a(p.k, p.c, u + xi * kc, p.c, packed + xi * packed_a_size(p.k, p.c));
}

namespace {

// Tiles go through the GEMMs in blocks of whole tile rows (one image's row of tiles_w output
// tiles), so that both transforms run along contiguous rows and vectorise.
struct WinogradPlan {
  int tiles_h, tiles_w;  // output tiles per image (with pool2: only whole pooling windows)
  int64_t rows;          // tile rows over the batch: n * tiles_h
  int rows_per_block;
  int block;             // tiles per block: rows_per_block * tiles_w
};

WinogradPlan winograd_plan(const Conv2dShape& p, const ConvEpilogue& e) {
  WinogradPlan w;
  w.tiles_h = e.pool2 ? p.out_h() / 2 : (p.out_h() + 1) / 2;
  w.tiles_w = e.pool2 ? p.out_w() / 2 : (p.out_w() + 1) / 2;
  w.rows = (int64_t)p.n * w.tiles_h;
  // V [16, C, block] and M [16, K, block] together about 4 MB (second-level cache and some of
  // the third): ~512 tiles at 64 channels, ~128 at 256.
  const int64_t fit = (4 << 20) / (16 * 4 * (int64_t)(p.c + p.k));
  const int64_t tiles = std::clamp<int64_t>(fit, 32, 1024);
  w.rows_per_block = (int)std::clamp<int64_t>(tiles / std::max(1, w.tiles_w), 1, std::max<int64_t>(1, w.rows));
  w.block = w.rows_per_block * w.tiles_w;
  return w;
}

// The transforms' inner loops, on pointers passed as __restrict parameters: GCC vectorises these
// (it does not for the same loops on block-scope restrict pointers; fopt-info says "no vectype").
inline void bt_rows(const float* __restrict d0, const float* __restrict d1, const float* __restrict d2,
                    const float* __restrict d3, float* __restrict r0, float* __restrict r1, float* __restrict r2,
                    float* __restrict r3, int n) {
  for (int q = 0; q < n; ++q) {  // B^T d
    r0[q] = d0[q] - d2[q];
    r1[q] = d1[q] + d2[q];
    r2[q] = d2[q] - d1[q];
    r3[q] = d1[q] - d3[q];
  }
}

inline void bt_cols(const float* __restrict e, const float* __restrict o, float* __restrict v0, float* __restrict v1,
                    float* __restrict v2, float* __restrict v3, int tw) {
  for (int tx = 0; tx < tw; ++tx) {  // (B^T d) B: columns 2tx..2tx+3 are e[tx], o[tx], e[tx+1], o[tx+1]
    v0[tx] = e[tx] - e[tx + 1];
    v1[tx] = o[tx] + e[tx + 1];
    v2[tx] = e[tx + 1] - o[tx];
    v3[tx] = o[tx] - o[tx + 1];
  }
}

inline void at_rows(const float* __restrict a0, const float* __restrict a1, const float* __restrict a2,
                    const float* __restrict a3, float* __restrict s0, float* __restrict s1, int tw) {
  for (int tx = 0; tx < tw; ++tx) {  // A^T m
    s0[tx] = a0[tx] + a1[tx] + a2[tx];
    s1[tx] = a1[tx] - a2[tx] - a3[tx];
  }
}

inline void at_cols(const float* __restrict c0, const float* __restrict c1, const float* __restrict c2,
                    const float* __restrict c3, float* __restrict oa, float* __restrict ob, int tw, float bias,
                    bool relu, bool affine, float sc, float sh) {
  for (int tx = 0; tx < tw; ++tx) {  // (A^T m) A, bias, epilogue
    float va = c0[tx] + c1[tx] + c2[tx] + bias;
    float vb = c1[tx] - c2[tx] - c3[tx] + bias;
    if (relu) {
      va = va > 0.0f ? va : 0.0f;
      vb = vb > 0.0f ? vb : 0.0f;
    }
    if (affine) {
      va = va * sc + sh;
      vb = vb * sc + sh;
    }
    oa[tx] = va;
    ob[tx] = vb;
  }
}

inline void pool_max4(const float* __restrict o0, const float* __restrict o1, const float* __restrict o2,
                      const float* __restrict o3, float* __restrict dst, int tw) {
  for (int tx = 0; tx < tw; ++tx) dst[tx] = std::max(std::max(o0[tx], o1[tx]), std::max(o2[tx], o3[tx]));
}

// Clones for AVX-512, AVX2 and baseline x86-64 (the loader picks one): the transforms are plain
// loops along tile rows that the compiler vectorises.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define EMOTUNE_TRANSFORM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=haswell", "default")))
#else
#define EMOTUNE_TRANSFORM_CLONES
#endif

// For channel c and tile rows [r0, r0 + nr): V[xi][c][t] = (B^T d B)[xi] of each tile's 4x4 input
// patch d, B^T = [1 0 -1 0; 0 1 1 0; 0 -1 1 0; 0 1 0 -1], zero outside the image.
// Vertically first, on whole padded rows split into even (E) and odd (O) columns; then
// horizontally, where tile tx reads columns 2tx..2tx+3 = E[tx], O[tx], E[tx+1], O[tx+1].
EMOTUNE_TRANSFORM_CLONES void input_transform(const Conv2dShape& p, const WinogradPlan& w, const float* x, int64_t r0, int nr, int c,
                     float* v, int64_t ld_xi, float* tmp) {
  const int tw = w.tiles_w, half = tw + 1;  // E and O hold tw + 1 columns each
  float* rows = tmp;                        // 4 padded input rows, 2 * half each
  float* re = tmp + 8 * half;               // r_i even / odd: 4 x 2 x half
  float* vc = v + (int64_t)c * w.block;
  for (int j = 0; j < nr; ++j) {
    const int64_t row = r0 + j;
    const int64_t n = row / w.tiles_h;
    const int ty = (int)(row % w.tiles_h);
    const float* xc = x + (n * p.c + c) * (int64_t)p.h * p.w;
    for (int i = 0; i < 4; ++i) {
      float* dst = rows + i * 2 * half;  // [E..., O...]
      const int iy = 2 * ty - p.pad_h + i;
      if (iy < 0 || iy >= p.h) {
        std::fill(dst, dst + 2 * half, 0.0f);
        continue;
      }
      const float* src = xc + (int64_t)iy * p.w;
      // Columns 2q - pad and 2q + 1 - pad are both inside the row for q in [qa, qb): that part
      // is a plain even/odd split; the few q around it check the bounds.
      const int qb = std::min(half, p.w + p.pad_w >= 2 ? (p.w - 2 + p.pad_w) / 2 + 1 : 0);
      const int qa = std::min((p.pad_w + 1) / 2, qb);
      auto edge = [&](int q) {
        const int ix0 = 2 * q - p.pad_w, ix1 = ix0 + 1;
        dst[q] = ix0 >= 0 && ix0 < p.w ? src[ix0] : 0.0f;
        dst[half + q] = ix1 >= 0 && ix1 < p.w ? src[ix1] : 0.0f;
      };
      for (int q = 0; q < qa; ++q) edge(q);
      const float* s0 = src + 2 * qa - p.pad_w;
      for (int q = qa; q < qb; ++q) {
        dst[q] = s0[2 * (q - qa)];
        dst[half + q] = s0[2 * (q - qa) + 1];
      }
      for (int q = qb; q < half; ++q) edge(q);
    }
    bt_rows(rows, rows + 2 * half, rows + 4 * half, rows + 6 * half, re, re + 2 * half, re + 4 * half,
            re + 6 * half, 2 * half);
    const int64_t t0 = (int64_t)j * tw;
    for (int i = 0; i < 4; ++i) {
      const float* e = re + i * 2 * half;
      bt_cols(e, e + half, vc + (i * 4 + 0) * ld_xi + t0, vc + (i * 4 + 1) * ld_xi + t0,
              vc + (i * 4 + 2) * ld_xi + t0, vc + (i * 4 + 3) * ld_xi + t0, tw);
    }
  }
}

// For channel k and tile rows [r0, r0 + nr): Y = A^T m A, A^T = [1 1 1 0; 0 1 -1 -1], plus the
// bias and the epilogue, along each tile row; the 2x2 tiles are pooled, or stored (clipped at
// the ragged bottom and right edges).
EMOTUNE_TRANSFORM_CLONES void output_transform(const Conv2dShape& p, const ConvEpilogue& e, const WinogradPlan& w, const float* m,
                      int64_t ld_xi, const float* b, int64_t r0, int nr, int k, float* y, float* tmp) {
  const int tw = w.tiles_w, oh = p.out_h(), ow = p.out_w(), ph = e.out_h(p), pw = e.out_w(p);
  const float bias = b ? b[k] : 0.0f;
  const bool relu = e.relu, affine = e.scale != nullptr;
  const float sc = affine ? e.scale[k] : 1.0f, sh = affine ? e.shift[k] : 0.0f;
  float* s = tmp;  // s[i][j] rows of tw: 8 rows
  float* o = tmp + 8 * tw;  // o00, o01, o10, o11
  for (int j = 0; j < nr; ++j) {
    const int64_t row = r0 + j;
    const int64_t n = row / w.tiles_h;
    const int ty = (int)(row % w.tiles_h);
    const float* mk = m + (int64_t)k * w.block + (int64_t)j * tw;
    for (int c = 0; c < 4; ++c)  // A^T m, column c of the 4x4 tile
      at_rows(mk + (0 * 4 + c) * ld_xi, mk + (1 * 4 + c) * ld_xi, mk + (2 * 4 + c) * ld_xi, mk + (3 * 4 + c) * ld_xi,
              s + c * tw, s + (4 + c) * tw, tw);
    for (int i = 0; i < 2; ++i)
      at_cols(s + (4 * i + 0) * tw, s + (4 * i + 1) * tw, s + (4 * i + 2) * tw, s + (4 * i + 3) * tw,
              o + (2 * i) * tw, o + (2 * i + 1) * tw, tw, bias, relu, affine, sc, sh);
    if (e.pool2) {
      pool_max4(o, o + tw, o + 2 * tw, o + 3 * tw, y + ((n * p.k + k) * ph + ty) * (int64_t)pw, tw);
      continue;
    }
    float* yk = y + (n * p.k + k) * (int64_t)oh * ow;
    for (int i = 0; i < 2 && 2 * ty + i < oh; ++i) {
      float* dst = yk + (int64_t)(2 * ty + i) * ow;
      const float* oa = o + (2 * i) * tw;
      const float* ob = o + (2 * i + 1) * tw;
      const int full = ow / 2;  // tiles with both columns inside
      for (int tx = 0; tx < full; ++tx) {
        dst[2 * tx] = oa[tx];
        dst[2 * tx + 1] = ob[tx];
      }
      if (full < tw) dst[2 * full] = oa[full];
    }
  }
}

}  // namespace

void conv2d_infer_winograd_cpu(const Conv2dShape& p, const float* x, const float* u, const float* b,
                               const ConvEpilogue& e, float* y) {
  const WinogradPlan w = winograd_plan(p, e);
  if (w.rows == 0 || w.tiles_w == 0) return;
  // Per block: V and M hold the 16 matrices side by side, xi-major: V[xi] is [C, block].
  const int64_t ldv = (int64_t)p.c * w.block, ldm = (int64_t)p.k * w.block;
  float* v = scratch(0, 16 * ldv);
  float* m = scratch(1, 16 * ldm);
  const int64_t kc = packed_a_size(p.k, p.c);
  parallel_region([&] {
    std::vector<float> tmp((size_t)16 * (w.tiles_w + 1));  // per worker: the row buffers
    for (int64_t r0 = 0; r0 < w.rows; r0 += w.rows_per_block) {
      const int nr = (int)std::min<int64_t>(w.rows_per_block, w.rows - r0);
      const int tb = nr * w.tiles_w;
#pragma omp for schedule(static)
      for (int c = 0; c < p.c; ++c) input_transform(p, w, x, r0, nr, c, v, ldv, tmp.data());
#pragma omp for schedule(static)
      for (int xi = 0; xi < 16; ++xi)
        gemm_packed_a(p.k, tb, p.c, u + xi * kc, v + xi * ldv, w.block, m + xi * ldm, w.block);
#pragma omp for schedule(static)
      for (int k = 0; k < p.k; ++k) output_transform(p, e, w, m, ldm, b, r0, nr, k, y, tmp.data());
    }
  });
}

}  // namespace emotune
