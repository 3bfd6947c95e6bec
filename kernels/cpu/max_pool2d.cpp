// max_pool2d on the CPU: the templated loops of max_pool2d_ref.h, split over image planes with
// OpenMP (planes are independent, so the result does not depend on the thread count), and for the
// 2x2 stride-2 windows both networks use, loops over whole output rows with the window's four
// comparisons written out: the same selections as the reference (the first maximum in row-major
// order; the first NaN wins), so the same results bit for bit (tests/test_max_pool2d.cpp), without
// the reference's per-window index arithmetic (it was 5% of a training step). Where AVX-512 is
// present those rows run 16 windows at a time (forward_2x2_avx512, backward_2x2_avx512): the
// same selections as masks, 6% of a vgg training step on Zen 4 before.
#include "kernels/max_pool2d.h"

#include <immintrin.h>

#include <atomic>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/max_pool2d_ref.h"

namespace emotune {

namespace {

bool is_2x2_stride_2(const Pool2dShape& p) { return p.kh == 2 && p.kw == 2 && p.stride_h == 2 && p.stride_w == 2; }

// The window's candidates in the reference's order: the new one wins when it is larger or a NaN,
// unless a NaN has already won. Returns whether e replaces v.
inline bool takes(float v, float e) { return v == v && (e > v || e != e); }

// Output row oy of a 2x2 stride-2 backward: its two input rows, their gradient rows and its
// upstream gradient row.
struct BackwardRows {
  const float* a;
  const float* b;
  float* da;
  float* db;
  const float* gy;
};
inline BackwardRows backward_rows(const Pool2dShape& p, const float* plane, const float* g, float* d, int oy) {
  const float* a = plane + (int64_t)(2 * oy) * p.w;
  float* da = d + (int64_t)(2 * oy) * p.w;
  return {a, a + p.w, da, da + p.w, g + (int64_t)oy * p.out_w()};
}

void forward_2x2(const Pool2dShape& p, const float* __restrict plane, float* __restrict out) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int oy = 0; oy < oh; ++oy) {
    const float* a = plane + (int64_t)(2 * oy) * p.w;
    const float* b = a + p.w;
    float* o = out + (int64_t)oy * ow;
    for (int ox = 0; ox < ow; ++ox) {
      float v = a[2 * ox];
      v = takes(v, a[2 * ox + 1]) ? a[2 * ox + 1] : v;
      v = takes(v, b[2 * ox]) ? b[2 * ox] : v;
      v = takes(v, b[2 * ox + 1]) ? b[2 * ox + 1] : v;
      o[ox] = v;
    }
  }
}

void backward_2x2(const Pool2dShape& p, const float* __restrict plane, const float* __restrict g,
                  float* __restrict d) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int oy = 0; oy < oh; ++oy) {
    const auto [a, b, da, db, gy] = backward_rows(p, plane, g, d, oy);
    for (int ox = 0; ox < ow; ++ox) {
      float v = a[2 * ox];
      int best = 0;  // 0, 1: row a; 2, 3: row b
      if (takes(v, a[2 * ox + 1])) v = a[2 * ox + 1], best = 1;
      if (takes(v, b[2 * ox])) v = b[2 * ox], best = 2;
      if (takes(v, b[2 * ox + 1])) best = 3;
      const float gv = gy[ox];
      da[2 * ox] = best == 0 ? gv : 0.0f;
      da[2 * ox + 1] = best == 1 ? gv : 0.0f;
      db[2 * ox] = best == 2 ? gv : 0.0f;
      db[2 * ox + 1] = best == 3 ? gv : 0.0f;
    }
    if (p.w > 2 * ow) da[p.w - 1] = db[p.w - 1] = 0.0f;  // an odd last column: in no window
  }
  if (p.h > 2 * oh) {  // an odd last row: in no window
    float* last = d + (int64_t)(p.h - 1) * p.w;
    for (int i = 0; i < p.w; ++i) last[i] = 0.0f;
  }
}

// ---------------------------------------------------------------- the same rows, 16 windows at a time
#define EMOTUNE_POOL_AVX512 __attribute__((target("avx512f")))

// takes() for 16 lanes: v is ordered and (e > v or e is a NaN).
EMOTUNE_POOL_AVX512 inline __mmask16 takes16(__m512 v, __m512 e) {
  return _mm512_cmp_ps_mask(v, v, _CMP_ORD_Q) &
         (_mm512_cmp_ps_mask(e, v, _CMP_GT_OQ) | _mm512_cmp_ps_mask(e, e, _CMP_UNORD_Q));
}

// Windows ox .. ox + n - 1 (n <= 16) of a row: the loads and stores of their 2n columns as two
// masks over 16 floats each.
struct Lanes {
  __mmask16 out, lo, hi;
  explicit Lanes(int n)
      : out((__mmask16)((1u << n) - 1)),
        lo((__mmask16)(2 * n >= 16 ? 0xFFFFu : (1u << (2 * n)) - 1)),
        hi((__mmask16)(2 * n > 16 ? (1u << (2 * n - 16)) - 1 : 0u)) {}
};

// The even and odd columns of 2n floats from r (the pairs of each window).
EMOTUNE_POOL_AVX512 inline void load_pairs(const float* r, const Lanes& m, __m512* even, __m512* odd) {
  const __m512i ie = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
  const __m512i io = _mm512_setr_epi32(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31);
  const __m512 lo = _mm512_maskz_loadu_ps(m.lo, r), hi = _mm512_maskz_loadu_ps(m.hi, r + 16);
  *even = _mm512_permutex2var_ps(lo, ie, hi);
  *odd = _mm512_permutex2var_ps(lo, io, hi);
}

// The inverse of load_pairs: 2n floats at r, even columns from even, odd from odd.
EMOTUNE_POOL_AVX512 inline void store_pairs(float* r, const Lanes& m, __m512 even, __m512 odd) {
  const __m512i il = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
  const __m512i ih = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
  _mm512_mask_storeu_ps(r, m.lo, _mm512_permutex2var_ps(even, il, odd));
  _mm512_mask_storeu_ps(r + 16, m.hi, _mm512_permutex2var_ps(even, ih, odd));
}

EMOTUNE_POOL_AVX512 void forward_2x2_avx512(const Pool2dShape& p, const float* __restrict plane,
                                            float* __restrict out) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int oy = 0; oy < oh; ++oy) {
    const float* a = plane + (int64_t)(2 * oy) * p.w;
    const float* b = a + p.w;
    float* o = out + (int64_t)oy * ow;
    for (int ox = 0; ox < ow; ox += 16) {
      const Lanes m(ow - ox < 16 ? ow - ox : 16);
      __m512 a0, a1, b0, b1;
      load_pairs(a + 2 * ox, m, &a0, &a1);
      load_pairs(b + 2 * ox, m, &b0, &b1);
      __m512 v = a0;
      v = _mm512_mask_mov_ps(v, takes16(v, a1), a1);
      v = _mm512_mask_mov_ps(v, takes16(v, b0), b0);
      v = _mm512_mask_mov_ps(v, takes16(v, b1), b1);
      _mm512_mask_storeu_ps(o + ox, m.out, v);
    }
  }
}

EMOTUNE_POOL_AVX512 void backward_2x2_avx512(const Pool2dShape& p, const float* __restrict plane,
                                             const float* __restrict g, float* __restrict d) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int oy = 0; oy < oh; ++oy) {
    const auto [a, b, da, db, gy] = backward_rows(p, plane, g, d, oy);
    for (int ox = 0; ox < ow; ox += 16) {
      const Lanes m(ow - ox < 16 ? ow - ox : 16);
      __m512 a0, a1, b0, b1;
      load_pairs(a + 2 * ox, m, &a0, &a1);
      load_pairs(b + 2 * ox, m, &b0, &b1);
      const __mmask16 k1 = takes16(a0, a1);
      __m512 v = _mm512_mask_mov_ps(a0, k1, a1);
      const __mmask16 k2 = takes16(v, b0);
      v = _mm512_mask_mov_ps(v, k2, b0);
      const __mmask16 k3 = takes16(v, b1);
      // The last candidate taken is the window's maximum (best 0..3 of backward_2x2).
      const __mmask16 is3 = k3, is2 = k2 & ~k3, is1 = k1 & ~k2 & ~k3, is0 = ~(k1 | k2 | k3);
      const __m512 gv = _mm512_maskz_loadu_ps(m.out, gy + ox);
      store_pairs(da + 2 * ox, m, _mm512_maskz_mov_ps(is0, gv), _mm512_maskz_mov_ps(is1, gv));
      store_pairs(db + 2 * ox, m, _mm512_maskz_mov_ps(is2, gv), _mm512_maskz_mov_ps(is3, gv));
    }
    if (p.w > 2 * ow) da[p.w - 1] = db[p.w - 1] = 0.0f;  // an odd last column: in no window
  }
  if (p.h > 2 * oh) {  // an odd last row: in no window
    float* last = d + (int64_t)(p.h - 1) * p.w;
    for (int i = 0; i < p.w; ++i) last[i] = 0.0f;
  }
}

std::atomic<bool> g_portable_only{false};

bool rows_avx512() {
  static const bool avx512 = cpu_features_detect().best() == CpuIsa::avx512;
  return avx512 && !g_portable_only.load(std::memory_order_relaxed);
}

}  // namespace

void max_pool2d_force_portable_for_testing(bool on) { g_portable_only.store(on); }

void max_pool2d_forward_cpu(const Pool2dShape& p, const float* x, float* y) {
  const int64_t planes = (int64_t)p.n * p.c, xs = (int64_t)p.h * p.w, ys = (int64_t)p.out_h() * p.out_w();
  Pool2dShape one = p;
  one.n = 1;
  one.c = 1;
  const bool fast = is_2x2_stride_2(p), wide = fast && rows_avx512();
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) {
    if (wide)
      forward_2x2_avx512(one, x + i * xs, y + i * ys);
    else if (fast)
      forward_2x2(one, x + i * xs, y + i * ys);
    else
      max_pool2d_forward_ref<float>(one, x + i * xs, y + i * ys);
  }
}

void max_pool2d_backward_cpu(const Pool2dShape& p, const float* x, const float* dy, float* dx) {
  const int64_t planes = (int64_t)p.n * p.c, xs = (int64_t)p.h * p.w, ys = (int64_t)p.out_h() * p.out_w();
  Pool2dShape one = p;
  one.n = 1;
  one.c = 1;
  const bool fast = is_2x2_stride_2(p), wide = fast && rows_avx512();
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) {
    if (wide)
      backward_2x2_avx512(one, x + i * xs, dy + i * ys, dx + i * xs);
    else if (fast)
      backward_2x2(one, x + i * xs, dy + i * ys, dx + i * xs);
    else
      max_pool2d_backward_ref<float>(one, x + i * xs, dy + i * ys, dx + i * xs);
  }
}

}  // namespace emotune
