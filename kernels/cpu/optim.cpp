// Fused optimizer updates on the CPU, PyTorch's formulas (torch.optim.SGD with dampening 0,
// torch.optim.Adam / AdamW), one pass over the parameters. The per-call Adam scalars (bias corrections
// in double) come from adam_coefficients() in kernels/optim.h, shared with the CUDA kernel.
#include "kernels/optim.h"

#include <cmath>

#include "kernels/cpu/simd.h"

namespace emotune {

namespace {
constexpr int64_t kParallelMin = 65536;

// The loops, cloned for AVX-512, AVX2 and SSE2 and run per thread on contiguous chunks
// (kernels/cpu/simd.h): under a plain 'parallel for simd' at baseline x86-64 Adam's was scalar
// (sqrtss, divss), 1.2% of a vgg training step. Each element's update depends on its own values
// only: chunks never change a result.
EMOTUNE_SIMD_CLONES void sgd_range(int64_t n, float lr, float mu, float wd, bool nesterov, float* w,
                                   const float* g, float* velocity) {
  if (mu == 0.0f) {
#pragma omp simd
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * w[i];
    // PyTorch starts the buffer at g on the first step; v = mu * 0 + g is the same with v zeroed.
    const float v = mu * velocity[i] + gi;
    velocity[i] = v;
    w[i] -= lr * (nesterov ? gi + mu * v : v);
  }
}

EMOTUNE_SIMD_CLONES void adam_range(int64_t n, float b1, float b2, float eps, float step_size, float sqrt_bc2,
                                    float coupled_wd, float decay, float* w, const float* g, float* m, float* v) {
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float wi = w[i] * decay;
    const float gi = g[i] + coupled_wd * w[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    // m^ / (sqrt(v^) + eps) with m^ = m / bc1, v^ = v / bc2, arranged as PyTorch does.
    w[i] = wi - step_size * mi / (std::sqrt(vi) / sqrt_bc2 + eps);
  }
}

}  // namespace

void sgd_update_cpu(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity) {
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) {
    sgd_range(i1 - i0, p.lr, p.momentum, p.weight_decay, p.nesterov, w + i0, g + i0, velocity ? velocity + i0 : nullptr);
  });
}

void adam_update_cpu(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v) {
  const AdamCoefficients c = adam_coefficients(p);
  parallel_chunks(n, kParallelMin, [&](int64_t i0, int64_t i1) {
    adam_range(i1 - i0, p.beta1, p.beta2, p.eps, c.step_size, c.sqrt_bc2, c.coupled_wd, c.decay, w + i0, g + i0,
               m + i0, v + i0);
  });
}

}  // namespace emotune
