// max_pool2d: max over kh x kw windows, no padding, output size floor((h - kh) / stride) + 1
// (Keras' "valid" pooling). Layouts: x [N, C, H, W], y [N, C, OH, OW].
// Backward routes dy to the first maximum of each window in row-major order (ties go to the
// earliest element), recomputed from x: no index buffer is kept. dx is overwritten.
// NaN inside a window is propagated to y (a NaN compares as the maximum).
#pragma once
#include <cstdint>

namespace emotune {

struct Pool2dShape {
  int n = 1, c = 1, h = 1, w = 1;
  int kh = 2, kw = 2;
  int stride_h = 2, stride_w = 2;

  int out_h() const { return (h - kh) / stride_h + 1; }
  int out_w() const { return (w - kw) / stride_w + 1; }
  int64_t x_size() const { return (int64_t)n * c * h * w; }
  int64_t y_size() const { return (int64_t)n * c * out_h() * out_w(); }
};

void max_pool2d_forward_cpu(const Pool2dShape& p, const float* x, float* y);
void max_pool2d_backward_cpu(const Pool2dShape& p, const float* x, const float* dy, float* dx);
// Tests: while on, the 2x2 stride-2 path runs its portable loops where AVX-512 is present too.
void max_pool2d_force_portable_for_testing(bool on);

void max_pool2d_forward_cuda(const Pool2dShape& p, const float* x, float* y);
void max_pool2d_backward_cuda(const Pool2dShape& p, const float* x, const float* dy, float* dx);

}  // namespace emotune
