// conv2d_infer on the CPU (contract in kernels/conv2d_infer.h): im2col + sgemm with the epilogue
// applied per chunk of images, and Winograd F(2x2, 3x3) with the epilogue (and the 2x2 pool) in
// its output transform.
#include "kernels/conv2d_infer.h"

#include <omp.h>

#include <algorithm>
#include <vector>

#include "kernels/runtime.h"
#include "kernels/cpu/gemm_packed.h"
#include "kernels/cpu/scratch.h"

namespace emotune {

namespace {

// The epilogue on n values of one output channel, in place: bias, ReLU, affine (both paths).
inline void finish(float* __restrict v, int n, float bias, bool relu, bool affine, float sc, float sh) {
  for (int q = 0; q < n; ++q) {
    float x = v[q] + bias;
    if (relu) x = x > 0.0f ? x : 0.0f;
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
void g_transform(int m, const double* g, double* out /* alpha x 3 rows of a column */) {
  if (m == 2) {
    out[0] = g[0];
    out[1] = 0.5 * (g[0] + g[1] + g[2]);
    out[2] = 0.5 * (g[0] - g[1] + g[2]);
    out[3] = g[2];
  } else {
    out[0] = g[0] / 4;
    out[1] = -(g[0] + g[1] + g[2]) / 6;
    out[2] = -(g[0] - g[1] + g[2]) / 6;
    out[3] = g[0] / 24 + g[1] / 12 + g[2] / 6;
    out[4] = g[0] / 24 - g[1] / 12 + g[2] / 6;
    out[5] = g[2];
  }
}

}  // namespace

// U = G g G^T per filter, computed in double and rounded once; U_xi [K, C] then packed for
// gemm_packed_a, xi = i * alpha + j.
void winograd_weights(const Conv2dShape& p, const float* w, float* packed, int tile) {
  const int alpha = tile + 2;
  const int64_t kc = (int64_t)p.k * p.c;
  std::vector<float> plain((size_t)(alpha * alpha * kc));
  for (int k = 0; k < p.k; ++k)
    for (int c = 0; c < p.c; ++c) {
      const float* g = w + ((int64_t)k * p.c + c) * 9;
      double t[6][3];  // G g: column j of g -> column j of t
      for (int j = 0; j < 3; ++j) {
        const double col[3] = {g[j], g[3 + j], g[6 + j]};
        double out[6];
        g_transform(tile, col, out);
        for (int i = 0; i < alpha; ++i) t[i][j] = out[i];
      }
      for (int i = 0; i < alpha; ++i) {  // (G g) G^T: row i of t through G
        double out[6];
        g_transform(tile, t[i], out);
        for (int j = 0; j < alpha; ++j) plain[(size_t)((i * alpha + j) * kc + (int64_t)k * p.c + c)] = (float)out[j];
      }
    }
  for (int xi = 0; xi < alpha * alpha; ++xi)
    pack_a(p.k, p.c, plain.data() + xi * kc, p.c, packed + xi * packed_a_size(p.k, p.c));
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

// Clones for AVX-512, AVX2 and baseline x86-64 (the loader picks one): the transforms are plain
// loops along tile rows that the compiler vectorises.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define EMOTUNE_TRANSFORM_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=haswell", "default")))
#else
#define EMOTUNE_TRANSFORM_CLONES
#endif

// Scratch of one worker: enough rows for either transform.
int64_t transform_scratch(const WinogradPlan& w) { return (int64_t)(4 * w.alpha * w.alpha + 8) * (w.tiles_w + 2); }

// For channel c and tile rows [r0, r0 + nr): V[xi][c][t] = (B^T d B)[xi] of each tile's alpha x
// alpha input patch d, zero outside the image. Each input row is split by column phase (column
// m q + r - pad in phase r, q = 0..tiles_w), so that tile tx reads phases 0..m-1 at q = tx and
// phases 0..alpha-m-1 at q = tx + 1: B^T runs down whole rows first, then across them.
EMOTUNE_TRANSFORM_CLONES void input_transform(const Conv2dShape& p, const WinogradPlan& w, const float* x,
                                              int64_t r0, int nr, int c, float* v, int64_t ld_xi, float* tmp) {
  const int m = w.m, alpha = w.alpha, tw = w.tiles_w, len = tw + 1;  // a phase holds len columns
  float* rows = tmp;                          // alpha input rows x m phases x len
  float* bt = tmp + alpha * m * len;          // alpha rows (B^T d) x m phases x len
  float* vc = v + (int64_t)c * w.block;
  for (int j = 0; j < nr; ++j) {
    const int64_t row = r0 + j;
    const int64_t n = row / w.tiles_h;
    const int ty = (int)(row % w.tiles_h);
    const float* xc = x + (n * p.c + c) * (int64_t)p.h * p.w;
    for (int i = 0; i < alpha; ++i) {
      float* dst = rows + (int64_t)i * m * len;
      const int iy = m * ty - p.pad_h + i;
      if (iy < 0 || iy >= p.h) {
        std::fill(dst, dst + m * len, 0.0f);
        continue;
      }
      const float* src = xc + (int64_t)iy * p.w;
      for (int r = 0; r < m; ++r) {
        float* ph = dst + r * len;
        // Column m q + r - pad lies inside the row for q in [qa, qb).
        const int off = r - p.pad_w;
        const int qa = std::min(len, off >= 0 ? 0 : (-off + m - 1) / m);
        const int qb = std::max(qa, std::min(len, p.w - off > 0 ? (p.w - off + m - 1) / m : 0));
        for (int q = 0; q < qa; ++q) ph[q] = 0.0f;
        for (int q = qa; q < qb; ++q) ph[q] = src[m * q + off];
        for (int q = qb; q < len; ++q) ph[q] = 0.0f;
      }
    }
    const int64_t rs = (int64_t)m * len;  // one row's phases
    if (m == 2)
      bt2(rows, rows + rs, rows + 2 * rs, rows + 3 * rs, bt, bt + rs, bt + 2 * rs, bt + 3 * rs, (int)rs);
    else
      bt4(rows, rows + rs, rows + 2 * rs, rows + 3 * rs, rows + 4 * rs, rows + 5 * rs, bt, bt + rs, bt + 2 * rs,
          bt + 3 * rs, bt + 4 * rs, bt + 5 * rs, (int)rs);
    const int64_t t0 = (int64_t)j * tw;
    for (int i = 0; i < alpha; ++i) {  // (B^T d) B across the row: inputs are columns 0..alpha-1
      const float* b = bt + i * rs;
      const float* col[6];
      for (int q = 0; q < alpha; ++q) col[q] = b + (q % m) * len + q / m;  // column q of tile tx at [tx]
      float* out = vc + (int64_t)(i * alpha) * ld_xi + t0;
      if (m == 2)
        bt2(col[0], col[1], col[2], col[3], out, out + ld_xi, out + 2 * ld_xi, out + 3 * ld_xi, tw);
      else
        bt4(col[0], col[1], col[2], col[3], col[4], col[5], out, out + ld_xi, out + 2 * ld_xi, out + 3 * ld_xi,
            out + 4 * ld_xi, out + 5 * ld_xi, tw);
    }
  }
}

// For channel k and tile rows [r0, r0 + nr): Y = A^T M A per tile, then bias and the epilogue; the
// m x m tile is pooled (2x2) or stored, clipped at the bottom and right edges.
EMOTUNE_TRANSFORM_CLONES void output_transform(const Conv2dShape& p, const ConvEpilogue& e, const WinogradPlan& w,
                                               const float* mm, int64_t ld_xi, const float* b, int64_t r0, int nr,
                                               int k, float* y, float* tmp) {
  const int m = w.m, alpha = w.alpha, tw = w.tiles_w, oh = p.out_h(), ow = p.out_w(), ph = e.out_h(p),
            pw = e.out_w(p);
  const float bias = b ? b[k] : 0.0f;
  const bool relu = e.relu, affine = e.scale != nullptr;
  const float sc = affine ? e.scale[k] : 1.0f, sh = affine ? e.shift[k] : 0.0f;
  float* s = tmp;                  // A^T M: m rows x alpha columns, each tw long
  float* o = tmp + m * alpha * tw;  // (A^T M) A: m x m, each tw long
  float* pr = o + m * m * tw;      // one pooled row pair
  for (int j = 0; j < nr; ++j) {
    const int64_t row = r0 + j;
    const int64_t n = row / w.tiles_h;
    const int ty = (int)(row % w.tiles_h);
    const float* mk = mm + (int64_t)k * w.block + (int64_t)j * tw;
    for (int c = 0; c < alpha; ++c) {  // A^T down column c of the tile
      const float* a[6];
      for (int i = 0; i < alpha; ++i) a[i] = mk + (int64_t)(i * alpha + c) * ld_xi;
      if (m == 2)
        at2(a[0], a[1], a[2], a[3], s + c * tw, s + (alpha + c) * tw, tw);
      else
        at4(a[0], a[1], a[2], a[3], a[4], a[5], s + c * tw, s + (alpha + c) * tw, s + (2 * alpha + c) * tw,
            s + (3 * alpha + c) * tw, tw);
    }
    for (int i = 0; i < m; ++i) {  // then across each of its m rows
      const float* si = s + i * alpha * tw;
      float* oi = o + i * m * tw;  // o[i][jj] at oi + jj * tw
      if (m == 2)
        at2(si, si + tw, si + 2 * tw, si + 3 * tw, oi, oi + tw, tw);
      else
        at4(si, si + tw, si + 2 * tw, si + 3 * tw, si + 4 * tw, si + 5 * tw, oi, oi + tw, oi + 2 * tw, oi + 3 * tw, tw);
      finish(oi, m * tw, bias, relu, affine, sc, sh);
    }
    if (e.pool2) {
      const int half = m / 2;
      for (int pi = 0; pi < half; ++pi) {
        const int py = ty * half + pi;
        if (py >= ph) break;
        // max over output rows 2pi, 2pi+1, then over column pairs
        max2(o + (2 * pi) * m * tw, o + (2 * pi + 1) * m * tw, pr, m * tw);
        float* dst = y + ((n * p.k + k) * ph + py) * (int64_t)pw;
        for (int pj = 0; pj < half; ++pj)
          for (int tx = 0; tx < tw; ++tx) {
            const int px = tx * half + pj;
            if (px < pw) dst[px] = std::max(pr[(2 * pj) * tw + tx], pr[(2 * pj + 1) * tw + tx]);
          }
      }
      continue;
    }
    float* yk = y + (n * p.k + k) * (int64_t)oh * ow;
    for (int i = 0; i < m && m * ty + i < oh; ++i) {
      float* dst = yk + (int64_t)(m * ty + i) * ow;
      const float* oi = o + i * m * tw;
      for (int jj = 0; jj < m; ++jj)
        for (int tx = 0; tx < tw; ++tx) {
          const int ox = m * tx + jj;
          if (ox < ow) dst[ox] = oi[jj * tw + tx];
        }
    }
  }
}

}  // namespace

void conv2d_infer_winograd_cpu(const Conv2dShape& p, const float* x, const float* u, const float* b,
                               const ConvEpilogue& e, float* y, int tile) {
  const WinogradPlan w = winograd_plan(p, e, tile);
  if (w.rows == 0 || w.tiles_w == 0) return;
  const int xis = w.alpha * w.alpha;
  // Per block: V and M hold the alpha^2 matrices side by side, xi-major: V[xi] is [C, block].
  const int64_t ldv = (int64_t)p.c * w.block, ldm = (int64_t)p.k * w.block;
  float* v = thread_scratch(Scratch::winograd_v, xis * ldv);
  float* m = thread_scratch(Scratch::winograd_m, xis * ldm);
  const int64_t kc = packed_a_size(p.k, p.c);
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
        gemm_packed_a(p.k, tb, p.c, u + xi * kc, v + xi * ldv, w.block, m + xi * ldm, w.block);
#pragma omp for schedule(dynamic, 4)
      for (int k = 0; k < p.k; ++k) output_transform(p, e, w, m, ldm, b, r0, nr, k, y, tmp.data());
    }
  });
}

}  // namespace emotune
