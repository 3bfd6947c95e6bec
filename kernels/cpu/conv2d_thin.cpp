// The direct fp32 convolution for thin inputs (contract and tests: kernels/cpu/conv2d_thin.h).
#include "kernels/cpu/conv2d_thin.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/scratch.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define EMOTUNE_THIN_AVX512 1
#else
#define EMOTUNE_THIN_AVX512 0
#endif

namespace emotune {

bool conv2d_thin_applies(const Conv2dShape& p) {
#if EMOTUNE_THIN_AVX512
  return p.stride_h == 1 && p.stride_w == 1 && (int64_t)p.c * p.r * p.s <= kThinMaxTaps && p.out_w() >= 16 &&
         p.out_h() >= 1 && cpu_has_avx512();
#else
  (void)p;
  return false;
#endif
}

#if EMOTUNE_THIN_AVX512
namespace {

// One image's channels, zero-padded: plane c, row iy of the padded image (image row iy - pad_h) at
// c * rows * pitch + iy * pitch. rows = OH + R - 1 and pitch = OW + S - 1: every tap of every
// output lands inside it.
struct Padded {
  int rows, pitch;
  int64_t plane() const { return (int64_t)rows * pitch; }
};
Padded padded_of(const Conv2dShape& p) { return {p.out_h() + p.r - 1, p.out_w() + p.s - 1}; }

void pad_image(const Conv2dShape& p, const Padded& g, const float* x, float* out) {
  std::memset(out, 0, sizeof(float) * (size_t)(g.plane() * p.c));
  const int x0 = std::max(0, p.pad_w), x1 = std::min(g.pitch, p.pad_w + p.w);  // padded columns from the image
  for (int c = 0; c < p.c; ++c)
    for (int iy = 0; iy < g.rows; ++iy) {
      const int sy = iy - p.pad_h;
      if (sy < 0 || sy >= p.h || x1 <= x0) continue;
      std::memcpy(out + c * g.plane() + (int64_t)iy * g.pitch + x0, x + ((int64_t)c * p.h + sy) * p.w + (x0 - p.pad_w),
                  sizeof(float) * (size_t)(x1 - x0));
    }
}

// Offsets of the T taps (c, r, s) in a padded image, in w's order.
void tap_offsets(const Conv2dShape& p, const Padded& g, int* off) {
  int t = 0;
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s) off[t++] = (int)(c * g.plane() + (int64_t)r * g.pitch + s);
}

__mmask16 lanes(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1); }

// The T shifted input vectors of a 16-lane chunk whose first tap reads base (lanes past m zero).
template <int T>
__attribute__((target("avx512f"), always_inline)) inline void load_taps(const float* base, const int* off, __mmask16 m,
                                                                         __m512* xv) {
#pragma GCC unroll 16
  for (int t = 0; t < T; ++t) xv[t] = _mm512_maskz_loadu_ps(m, base + off[t]);
}

// Output rows [oy0, oy1) of one image: y_img [K, OH, OW]. KB output channels at a time, over the
// whole run of rows, so that each of the KB planes is written front to back; the T input vectors
// are loaded again for each block, from L1. KB chains of T multiply-adds side by side hide the FMA
// latency; the filters come as broadcasts from memory (L1). (Non-temporal stores of the whole
// chunks cut this call by ~15% at batch 64 but cost as much in the next layer, which then reads
// its input from memory: a training step was no faster, 2-5% slower at batch 16.)
template <int T>
__attribute__((target("avx512f"))) void forward_rows(const Conv2dShape& p, const Padded& g, const float* xpad,
                                                     int oy0, int oy1, const float* w, const float* b, bool relu,
                                                     const float* scale, const float* shift, float* y_img) {
  constexpr int KB = 8;
  const int ow = p.out_w(), K = p.k;
  const int64_t plane = (int64_t)p.out_h() * ow;
  int off[T];
  tap_offsets(p, g, off);
  const __m512 zero = _mm512_setzero_ps();
  for (int k0 = 0; k0 < K; k0 += KB) {
    const int kb = std::min(KB, K - k0);
    const float* wk = w + (int64_t)k0 * T;
    for (int oy = oy0; oy < oy1; ++oy)
      for (int ox0 = 0; ox0 < ow; ox0 += 16) {
        const __mmask16 m = lanes(ow - ox0);
        __m512 xv[T];
        load_taps<T>(xpad + (int64_t)oy * g.pitch + ox0, off, m, xv);
        __m512 acc[KB];
#pragma GCC unroll 8
        for (int j = 0; j < KB; ++j) acc[j] = b && j < kb ? _mm512_set1_ps(b[k0 + j]) : zero;
        if (kb == KB) {
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t)
#pragma GCC unroll 8
            for (int j = 0; j < KB; ++j) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(wk[j * T + t]), xv[t], acc[j]);
        } else {
          for (int j = 0; j < kb; ++j)
#pragma GCC unroll 16
            for (int t = 0; t < T; ++t) acc[j] = _mm512_fmadd_ps(_mm512_set1_ps(wk[j * T + t]), xv[t], acc[j]);
        }
        float* yrow = y_img + (int64_t)k0 * plane + (int64_t)oy * ow + ox0;
#pragma GCC unroll 8
        for (int j = 0; j < KB; ++j) {  // unrolled, so that acc stays in registers
          if (j >= kb) break;
          __m512 v = acc[j];
          if (relu) v = _mm512_mask_mov_ps(v, _mm512_cmp_ps_mask(v, zero, _CMP_LE_OQ), zero);  // NaN passes
          if (scale) v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(scale[k0 + j])), _mm512_set1_ps(shift[k0 + j]));
          _mm512_mask_storeu_ps(yrow + j * plane, m, v);
        }
      }
  }
}

// Adds rows [oy0, oy1) of one image to the 16-lane sums accw [K][T][16] of dw and accb [K][16] of
// db, the latter in double as backward_bias keeps it (a sum of N * OH * OW terms).
template <int T>
__attribute__((target("avx512f,avx512vl"))) void weight_rows(const Conv2dShape& p, const Padded& g, const float* xpad,
                                                    const float* dy_img, int oy0, int oy1, float* accw, double* accb) {
  constexpr int KB = T <= 9 ? 2 : 1;  // 2 x (9 + 2) sums + 9 inputs + 1 gradient: the 32 registers
  const int oh = p.out_h(), ow = p.out_w(), K = p.k;
  int off[T];
  tap_offsets(p, g, off);
  for (int k0 = 0; k0 < K; k0 += KB) {
    const int kb = std::min(KB, K - k0);
    __m512 a[KB][T];
    __m512d bl[KB], bh[KB];
    for (int j = 0; j < KB; ++j) {
      const int k = j < kb ? k0 + j : k0;  // a missing last channel sums into a copy never stored
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) a[j][t] = _mm512_loadu_ps(accw + ((int64_t)k * T + t) * 16);
      bl[j] = _mm512_loadu_pd(accb + (int64_t)k * 16);
      bh[j] = _mm512_loadu_pd(accb + (int64_t)k * 16 + 8);
    }
    for (int oy = oy0; oy < oy1; ++oy)
      for (int ox0 = 0; ox0 < ow; ox0 += 16) {
        const __mmask16 m = lanes(ow - ox0);
        __m512 xv[T];
        load_taps<T>(xpad + (int64_t)oy * g.pitch + ox0, off, m, xv);
#pragma GCC unroll 2
        for (int j = 0; j < KB; ++j) {
          if (j >= kb) break;
          const float* dp = dy_img + ((int64_t)(k0 + j) * oh + oy) * ow + ox0;
          const __m512 d = _mm512_maskz_loadu_ps(m, dp);
#pragma GCC unroll 16
          for (int t = 0; t < T; ++t) a[j][t] = _mm512_fmadd_ps(d, xv[t], a[j][t]);
          // The halves for db loaded again (from L1) rather than split off d: GCC 12's extract and
          // cast intrinsics warn of an uninitialised operand.
          const __m256 lo = _mm256_maskz_loadu_ps((__mmask8)m, dp), hi = _mm256_maskz_loadu_ps((__mmask8)(m >> 8), dp + 8);
          bl[j] = _mm512_add_pd(bl[j], _mm512_maskz_cvtps_pd((__mmask8)0xFF, lo));
          bh[j] = _mm512_add_pd(bh[j], _mm512_maskz_cvtps_pd((__mmask8)0xFF, hi));
        }
      }
    for (int j = 0; j < kb; ++j) {
#pragma GCC unroll 16
      for (int t = 0; t < T; ++t) _mm512_storeu_ps(accw + ((int64_t)(k0 + j) * T + t) * 16, a[j][t]);
      _mm512_storeu_pd(accb + (int64_t)(k0 + j) * 16, bl[j]);
      _mm512_storeu_pd(accb + (int64_t)(k0 + j) * 16 + 8, bh[j]);
    }
  }
}

// The 16 lanes' sum, in lane order (plain loops: GCC 12's reduce intrinsics warn).
float lane_sum(const float* v) {
  float s = 0.0f;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}
double lane_sum(const double* v) {
  double s = 0.0;
  for (int i = 0; i < 16; ++i) s += v[i];
  return s;
}

using ForwardRows = void (*)(const Conv2dShape&, const Padded&, const float*, int, int, const float*, const float*,
                             bool, const float*, const float*, float*);
using WeightRows = void (*)(const Conv2dShape&, const Padded&, const float*, const float*, int, int, float*, double*);

template <int... T>
constexpr ForwardRows forward_of(int taps, std::integer_sequence<int, T...>) {
  constexpr ForwardRows table[] = {nullptr, &forward_rows<T + 1>...};
  return table[taps];
}
template <int... T>
constexpr WeightRows weight_of(int taps, std::integer_sequence<int, T...>) {
  constexpr WeightRows table[] = {nullptr, &weight_rows<T + 1>...};
  return table[taps];
}

// Output rows of the whole batch, [0, N * OH), split into one contiguous run per worker; body(worker,
// n, oy0, oy1, xpad) for each image's part of a run, its image padded in the worker's scratch.
template <typename F>
void by_row_runs(const Conv2dShape& p, int workers, const float* x, F body) {
  const Padded g = padded_of(p);
  const int64_t rows = (int64_t)p.n * p.out_h();
  const int64_t xs = (int64_t)p.c * p.h * p.w;
  auto run = [&](int t) {
    const int64_t r0 = rows * t / workers, r1 = rows * (t + 1) / workers;
    float* xpad = thread_scratch(Scratch::columns, g.plane() * p.c);
    for (int64_t r = r0; r < r1;) {
      const int n = (int)(r / p.out_h());
      const int oy0 = (int)(r - (int64_t)n * p.out_h());
      const int oy1 = (int)std::min<int64_t>(p.out_h(), oy0 + (r1 - r));
      pad_image(p, g, x + n * xs, xpad);
      body(t, n, oy0, oy1, xpad);
      r += oy1 - oy0;
    }
  };
  if (workers <= 1) {
    run(0);
    return;
  }
#pragma omp parallel for schedule(static, 1) num_threads(workers)
  for (int t = 0; t < workers; ++t) run(t);
}

// Below ~2 MFLOP (~10 us of one core) waking the other threads costs more than it saves.
int workers_for(const Conv2dShape& p) {
  if (omp_in_parallel() || p.flops() < 2e6) return 1;
  return (int)std::max<int64_t>(1, std::min<int64_t>(omp_get_max_threads(), (int64_t)p.n * p.out_h()));
}

}  // namespace

void conv2d_thin_forward(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                         const float* scale, const float* shift, float* y) {
  const int taps = p.c * p.r * p.s;
  const ForwardRows rows = forward_of(taps, std::make_integer_sequence<int, kThinMaxTaps>{});
  const Padded g = padded_of(p);
  const int64_t ys = (int64_t)p.k * p.out_h() * p.out_w();
  by_row_runs(p, workers_for(p), x, [&](int, int n, int oy0, int oy1, const float* xpad) {
    rows(p, g, xpad, oy0, oy1, w, b, relu, scale, shift, y + n * ys);
  });

}

void conv2d_thin_backward_weight(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db) {
  const int taps = p.c * p.r * p.s;
  const WeightRows rows = weight_of(taps, std::make_integer_sequence<int, kThinMaxTaps>{});
  const Padded g = padded_of(p);
  const int64_t ys = (int64_t)p.k * p.out_h() * p.out_w();
  const int workers = workers_for(p);
  const int64_t per = (int64_t)p.k * taps * 16, per_b = (int64_t)p.k * 16;
  std::vector<float> accw((size_t)(per * workers), 0.0f);
  std::vector<double> accb((size_t)(per_b * workers), 0.0);
  by_row_runs(p, workers, x, [&](int t, int n, int oy0, int oy1, const float* xpad) {
    rows(p, g, xpad, dy + n * ys, oy0, oy1, accw.data() + t * per, accb.data() + t * per_b);
  });
  for (int k = 0; k < p.k; ++k) {
    for (int t = 0; t < taps; ++t) {
      float s = 0.0f;
      for (int u = 0; u < workers; ++u) s += lane_sum(accw.data() + u * per + ((int64_t)k * taps + t) * 16);
      dw[(int64_t)k * taps + t] = s;
    }
    double s = 0.0;
    for (int u = 0; u < workers; ++u) s += lane_sum(accb.data() + u * per_b + (int64_t)k * 16);
    if (db) db[k] = (float)s;
  }
}

#else
// Never reached: conv2d_thin_applies is false here, and the callers ask it first.
void conv2d_thin_forward(const Conv2dShape&, const float*, const float*, const float*, bool, const float*, const float*,
                         float*) {
  throw Error("conv2d_thin: built without AVX-512 (conv2d_thin_applies is false on this build)");
}
void conv2d_thin_backward_weight(const Conv2dShape&, const float*, const float*, float*, float*) {
  throw Error("conv2d_thin: built without AVX-512 (conv2d_thin_applies is false on this build)");
}
#endif

}  // namespace emotune
