// Inverted dropout on the CPU. The mask is a pure function of (seed, offset + i) through
// kernels/philox.h, so backward regenerates it and the CUDA kernel reproduces it bit for bit.
// The scale is computed as 1.0f / (1.0f - p) in float, the same expression on both devices.
#include "kernels/dropout.h"

#include "kernels/philox.h"

namespace emotune {

namespace {
// y = keep(i) ? x * scale : 0; shared by forward (x) and backward (dy): the same mask both ways.
void apply_mask(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  const float scale = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) y[i] = philox_uniform(seed, offset + (uint64_t)i) >= p ? x[i] * scale : 0.0f;
}
}  // namespace

void dropout_forward_cpu(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  apply_mask(n, x, p, seed, offset, y);
}

void dropout_backward_cpu(int64_t n, const float* dy, float p, uint64_t seed, uint64_t offset, float* dx) {
  apply_mask(n, dy, p, seed, offset, dx);
}

}  // namespace emotune
