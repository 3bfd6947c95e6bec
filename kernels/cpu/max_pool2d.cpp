// max_pool2d on the CPU: the templated loops of max_pool2d_ref.h, split over image planes with
// OpenMP (planes are independent, so the result does not depend on the thread count).
#include "kernels/max_pool2d.h"

#include "kernels/cpu/max_pool2d_ref.h"

namespace emotune {

void max_pool2d_forward_cpu(const Pool2dShape& p, const float* x, float* y) {
  const int64_t planes = (int64_t)p.n * p.c, xs = (int64_t)p.h * p.w, ys = (int64_t)p.out_h() * p.out_w();
  Pool2dShape one = p;
  one.n = 1;
  one.c = 1;
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) max_pool2d_forward_ref<float>(one, x + i * xs, y + i * ys);
}

void max_pool2d_backward_cpu(const Pool2dShape& p, const float* x, const float* dy, float* dx) {
  const int64_t planes = (int64_t)p.n * p.c, xs = (int64_t)p.h * p.w, ys = (int64_t)p.out_h() * p.out_w();
  Pool2dShape one = p;
  one.n = 1;
  one.c = 1;
#pragma omp parallel for schedule(static) if (planes * xs > 32768)
  for (int64_t i = 0; i < planes; ++i) max_pool2d_backward_ref<float>(one, x + i * xs, dy + i * ys, dx + i * xs);
}

}  // namespace emotune
