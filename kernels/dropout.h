// Inverted dropout. Element i is kept iff philox_uniform(seed, offset + i) >= p; kept elements are
// scaled by 1 / (1 - p), so eval mode is the identity. Backward regenerates the same mask from
// (seed, offset): nothing is stored. The CPU and CUDA kernels give bit-identical masks.
// 0 <= p < 1. Outputs overwritten.
#pragma once
#include <cstdint>

namespace emotune {

void dropout_forward_cpu(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y);
void dropout_backward_cpu(int64_t n, const float* dy, float p, uint64_t seed, uint64_t offset, float* dx);

void dropout_forward_cuda(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y);
void dropout_backward_cuda(int64_t n, const float* dy, float p, uint64_t seed, uint64_t offset, float* dx);

}  // namespace emotune
