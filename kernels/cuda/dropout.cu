// Inverted dropout on the GPU. Element i is kept iff philox_uniform(seed, offset + i) >= p, the
// same function of kernels/philox.h that the CPU kernel calls, so the masks are bit-identical;
// the scale is the same float expression 1.0f / (1.0f - p). Backward regenerates the mask.
#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"
#include "kernels/philox.h"

namespace emotune {

namespace {

constexpr int kThreads = 256;

__global__ void dropout_mask_kernel(int64_t n, const float* x, float p, float scale, uint64_t seed,
                                    uint64_t offset, float* y) {
  EMOTUNE_GRID_STRIDE(i, n) {
    const float u = philox_uniform(seed, offset + (uint64_t)i);
    y[i] = u >= p ? x[i] * scale : 0.0f;
  }
}

void apply_mask(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  if (n <= 0) return;
  if (!(p >= 0.0f && p < 1.0f)) throw Error("dropout_cuda: p must be in [0, 1), got " + std::to_string(p));
  const float scale = 1.0f / (1.0f - p);
  dropout_mask_kernel<<<grid_for(n, kThreads), kThreads, 0, cuda_stream()>>>(n, x, p, scale, seed,
                                                                              offset, y);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace

void dropout_forward_cuda(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  apply_mask(n, x, p, seed, offset, y);
}

void dropout_backward_cuda(int64_t n, const float* dy, float p, uint64_t seed, uint64_t offset, float* dx) {
  apply_mask(n, dy, p, seed, offset, dx);
}

}  // namespace emotune
