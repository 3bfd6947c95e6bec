// Elementwise ops on the CPU: one loop each, memory-bound. OpenMP only above ~64k elements, where
// the second core's bandwidth outweighs waking it. Each output element depends on its inputs only,
// so threading never changes a result; sum_squares sums fixed-size blocks in double and adds the
// block sums in order, so it too is independent of the thread count. relu lets a NaN through (as
// PyTorch does), so a NaN in the weights reaches the loss instead of being silently zeroed.
#include "kernels/elementwise.h"

#include <cstddef>
#include <vector>

#include "kernels/cpu/simd.h"

namespace emotune {

namespace {
constexpr int64_t kParallelMin = 65536;

// The loops, one cloned function each (kernels/cpu/simd.h); `omp simd` because outputs may alias
// inputs element for element (y == x), which a vectoriser's overlap check would otherwise send
// down its scalar path.
EMOTUNE_SIMD_CLONES void fill_range(int64_t n, float value, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = value;
}
EMOTUNE_SIMD_CLONES void add_range(int64_t n, const float* a, const float* b, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] + b[i];
}
EMOTUNE_SIMD_CLONES void axpy_range(int64_t n, float alpha, const float* x, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
}
EMOTUNE_SIMD_CLONES void mul_range(int64_t n, const float* a, const float* b, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = a[i] * b[i];
}
EMOTUNE_SIMD_CLONES void scale_range(int64_t n, float alpha, const float* x, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i];
}
EMOTUNE_SIMD_CLONES void relu_range(int64_t n, const float* x, float* y) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i];
    y[i] = !(v <= 0.0f) ? v : 0.0f;  // a NaN passes through
  }
}
EMOTUNE_SIMD_CLONES void relu_backward_range(int64_t n, const float* x, const float* dy, float* dx) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float g = dy[i];  // read whatever x says: a select, not a branch
    dx[i] = x[i] > 0.0f ? g : 0.0f;
  }
}
}  // namespace

void fill_cpu(int64_t n, float value, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { fill_range(i1 - i0, value, y + i0); });
}

void add_cpu(int64_t n, const float* a, const float* b, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { add_range(i1 - i0, a + i0, b + i0, y + i0); });
}

void axpy_cpu(int64_t n, float alpha, const float* x, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { axpy_range(i1 - i0, alpha, x + i0, y + i0); });
}

void mul_cpu(int64_t n, const float* a, const float* b, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { mul_range(i1 - i0, a + i0, b + i0, y + i0); });
}

void scale_cpu(int64_t n, float alpha, const float* x, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { scale_range(i1 - i0, alpha, x + i0, y + i0); });
}

void scale_dev_cpu(int64_t n, const float* alpha, const float* x, float* y) {
  const float a = alpha[0];  // read once: y may alias alpha (a one-element scale in place)
  scale_cpu(n, a, x, y);
}

void relu_forward_cpu(int64_t n, const float* x, float* y) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) { relu_range(i1 - i0, x + i0, y + i0); });
}

void relu_backward_cpu(int64_t n, const float* x, const float* dy, float* dx) {
  parallel_chunks(n, kParallelMin,
                  [&](int64_t i0, int64_t i1) { relu_backward_range(i1 - i0, x + i0, dy + i0, dx + i0); });
}

void sum_squares_cpu(int64_t n, const float* x, float* out) {
  constexpr int64_t kBlock = 4096;
  const int64_t blocks = (n + kBlock - 1) / kBlock;
  std::vector<double> partial((std::size_t)blocks);
#pragma omp parallel for schedule(static) if (n > kParallelMin)
  for (int64_t b = 0; b < blocks; ++b) {
    double s = 0;
    const int64_t end = b * kBlock + kBlock < n ? b * kBlock + kBlock : n;
    for (int64_t i = b * kBlock; i < end; ++i) s += (double)x[i] * x[i];
    partial[(std::size_t)b] = s;
  }
  double total = 0;
  for (double s : partial) total += s;
  out[0] = (float)total;
}

}  // namespace emotune
