// Elementwise ops on the GPU: one grid-stride kernel each, memory-bound. Outputs may alias
// inputs (each element is read before it is written by the same thread). sum_squares reduces in
// double with a fixed launch shape, so its result is the same on every run.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/elementwise.h"

namespace emotune {

namespace {

constexpr int kThreads = 256;

__global__ void fill_kernel(int64_t n, float value, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) y[i] = value;
}
__global__ void add_kernel(int64_t n, const float* a, const float* b, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) y[i] = a[i] + b[i];
}
__global__ void axpy_kernel(int64_t n, float alpha, const float* x, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) y[i] += alpha * x[i];
}
__global__ void mul_kernel(int64_t n, const float* a, const float* b, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) y[i] = a[i] * b[i];
}
__global__ void scale_kernel(int64_t n, float alpha, const float* x, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) y[i] = alpha * x[i];
}
// alpha lives on the device (an upstream gradient); the launcher passes a private copy.
__global__ void scale_dev_kernel(int64_t n, const float* alpha, const float* x, float* y) {
  const float a = alpha[0];
  EMOTUNE_GRID_STRIDE(i, n) y[i] = a * x[i];
}
__global__ void relu_forward_kernel(int64_t n, const float* x, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) {
    const float v = x[i];
    y[i] = !(v <= 0.0f) ? v : 0.0f;  // a NaN passes through, as on the CPU
  }
}
__global__ void relu_backward_kernel(int64_t n, const float* x, const float* dy, float* dx) {
  EMOTUNE_GRID_STRIDE(i, n) dx[i] = x[i] > 0.0f ? dy[i] : 0.0f;
}

// Stage 1: each block sums a strided share in double; stage 2: one block adds the partials.
constexpr int kSumBlocks = 512;
__global__ void sum_squares_partial_kernel(int64_t n, const float* x, double* partial) {
  __shared__ double shared[32];
  double s = 0;
  EMOTUNE_GRID_STRIDE(i, n) s += (double)x[i] * (double)x[i];
  s = block_reduce_sum(s, shared);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}
__global__ void sum_partials_kernel(int count, const double* partial, float* out) {
  __shared__ double shared[32];
  double s = 0;
  for (int i = threadIdx.x; i < count; i += blockDim.x) s += partial[i];
  s = block_reduce_sum(s, shared);
  if (threadIdx.x == 0) out[0] = (float)s;
}

}  // namespace

#define EMOTUNE_LAUNCH_ELEMENTWISE(kernel, n, ...)                                       \
  do {                                                                                    \
    if ((n) <= 0) return;                                                                 \
    kernel<<<grid_for((n), kThreads), kThreads, 0, cuda_stream()>>>((n), __VA_ARGS__);    \
    EMOTUNE_LAUNCH_CHECK();                                                               \
  } while (0)

void fill_cuda(int64_t n, float value, float* y) { EMOTUNE_LAUNCH_ELEMENTWISE(fill_kernel, n, value, y); }
void add_cuda(int64_t n, const float* a, const float* b, float* y) {
  EMOTUNE_LAUNCH_ELEMENTWISE(add_kernel, n, a, b, y);
}
void axpy_cuda(int64_t n, float alpha, const float* x, float* y) {
  EMOTUNE_LAUNCH_ELEMENTWISE(axpy_kernel, n, alpha, x, y);
}
void mul_cuda(int64_t n, const float* a, const float* b, float* y) {
  EMOTUNE_LAUNCH_ELEMENTWISE(mul_kernel, n, a, b, y);
}
void scale_cuda(int64_t n, float alpha, const float* x, float* y) {
  EMOTUNE_LAUNCH_ELEMENTWISE(scale_kernel, n, alpha, x, y);
}
void scale_dev_cuda(int64_t n, const float* alpha, const float* x, float* y) {
  if (n <= 0) return;
  // y may alias alpha (a one-element scale in place, as the CPU kernel allows): with several
  // blocks one could overwrite alpha before another reads it, so read it from a private copy.
  DeviceScratch<float> a(1);
  copy_d2d_cuda(a.ptr, alpha, sizeof(float));
  EMOTUNE_LAUNCH_ELEMENTWISE(scale_dev_kernel, n, a.ptr, x, y);
}
void relu_forward_cuda(int64_t n, const float* x, float* y) {
  EMOTUNE_LAUNCH_ELEMENTWISE(relu_forward_kernel, n, x, y);
}
void relu_backward_cuda(int64_t n, const float* x, const float* dy, float* dx) {
  EMOTUNE_LAUNCH_ELEMENTWISE(relu_backward_kernel, n, x, dy, dx);
}

void sum_squares_cuda(int64_t n, const float* x, float* out) {
  if (n <= 0) {
    fill_cuda(1, 0.0f, out);
    return;
  }
  const int blocks = (int)std::min<int64_t>(kSumBlocks, ceil_div<int64_t>(n, kThreads));
  DeviceScratch<double> partial(blocks);
  sum_squares_partial_kernel<<<blocks, kThreads, 0, cuda_stream()>>>(n, x, partial.ptr);
  EMOTUNE_LAUNCH_CHECK();
  sum_partials_kernel<<<1, kThreads, 0, cuda_stream()>>>(blocks, partial.ptr, out);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune
