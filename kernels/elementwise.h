// Elementwise ops over n contiguous floats. Outputs may alias inputs (y == x is allowed).
//   fill:        y = value
//   add:         y = a + b
//   axpy:        y += alpha * x           (gradient accumulation)
//   mul:         y = a * b
//   scale:       y = alpha * x
//   scale_dev:   y = alpha[0] * x         (alpha is a scalar on the same device: an upstream gradient)
//   relu:        y = max(x, 0)
//   relu_backward: dx = x > 0 ? dy : 0    (the kink at 0 gets 0)
//   sum_squares: out[0] = sum x^2          (out is one float on the device; for the L2 penalty)
#pragma once
#include <cstdint>

namespace emotune {

void fill_cpu(int64_t n, float value, float* y);
void add_cpu(int64_t n, const float* a, const float* b, float* y);
void axpy_cpu(int64_t n, float alpha, const float* x, float* y);
void mul_cpu(int64_t n, const float* a, const float* b, float* y);
void scale_cpu(int64_t n, float alpha, const float* x, float* y);
void scale_dev_cpu(int64_t n, const float* alpha, const float* x, float* y);
void relu_forward_cpu(int64_t n, const float* x, float* y);
void relu_backward_cpu(int64_t n, const float* x, const float* dy, float* dx);
void sum_squares_cpu(int64_t n, const float* x, float* out);

void fill_cuda(int64_t n, float value, float* y);
void add_cuda(int64_t n, const float* a, const float* b, float* y);
void axpy_cuda(int64_t n, float alpha, const float* x, float* y);
void mul_cuda(int64_t n, const float* a, const float* b, float* y);
void scale_cuda(int64_t n, float alpha, const float* x, float* y);
void scale_dev_cuda(int64_t n, const float* alpha, const float* x, float* y);
void relu_forward_cuda(int64_t n, const float* x, float* y);
void relu_backward_cuda(int64_t n, const float* x, const float* dy, float* dx);
void sum_squares_cuda(int64_t n, const float* x, float* out);

}  // namespace emotune
