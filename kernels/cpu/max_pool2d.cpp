// max_pool2d on the CPU: the templated loops of max_pool2d_ref.h, split over image planes with
// OpenMP (planes are independent, so the result does not depend on the thread count), and for the
// 2x2 stride-2 windows both networks use, loops over whole output rows with the window's four
// comparisons written out: the same selections as the reference (the first maximum in row-major
// order; the first NaN wins), so the same results bit for bit (tests/test_max_pool2d.cpp), without
// the reference's per-window index arithmetic (it was 5% of a training step).
#include "kernels/max_pool2d.h"

#include "kernels/cpu/max_pool2d_ref.h"

namespace emotune {

namespace {

bool is_2x2_stride_2(const Pool2dShape& p) { return p.kh == 2 && p.kw == 2 && p.stride_h == 2 && p.stride_w == 2; }

// The window's candidates in the reference's order: the new one wins when it is larger or a NaN,
// unless a NaN has already won. Returns whether e replaces v.
inline bool takes(float v, float e) { return v == v && (e > v || e != e); }

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
    const float* a = plane + (int64_t)(2 * oy) * p.w;
    const float* b = a + p.w;
    float* da = d + (int64_t)(2 * oy) * p.w;
    float* db = da + p.w;
    const float* gy = g + (int64_t)oy * ow;
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

}  // namespace

void max_pool2d_forward_cpu(const Pool2dShape& p, const float* x, float* y) {
  const int64_t planes = (int64_t)p.n * p.c, xs = (int64_t)p.h * p.w, ys = (int64_t)p.out_h() * p.out_w();
  Pool2dShape one = p;
  one.n = 1;
  one.c = 1;
  const bool fast = is_2x2_stride_2(p);
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) {
    if (fast)
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
  const bool fast = is_2x2_stride_2(p);
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) {
    if (fast)
      backward_2x2(one, x + i * xs, dy + i * ys, dx + i * xs);
    else
      max_pool2d_backward_ref<float>(one, x + i * xs, dy + i * ys, dx + i * xs);
  }
}

}  // namespace emotune
