// Fused optimizer updates on the CPU, PyTorch's formulas (torch.optim.SGD with dampening 0,
// torch.optim.Adam / AdamW), one pass over the parameters. The per-call Adam scalars (bias corrections
// in double) come from adam_coefficients() in kernels/optim.h, shared with the CUDA kernel.
#include "kernels/optim.h"

#include <cmath>

namespace emotune {

namespace {
constexpr int64_t kParallelMin = 65536;
}

void sgd_update_cpu(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity) {
  const float lr = p.lr, mu = p.momentum, wd = p.weight_decay;
  if (mu == 0.0f) {
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
    for (int64_t i = 0; i < n; ++i) w[i] -= lr * (g[i] + wd * w[i]);
    return;
  }
  const bool nesterov = p.nesterov;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
  for (int64_t i = 0; i < n; ++i) {
    const float gi = g[i] + wd * w[i];
    // PyTorch starts the buffer at g on the first step; v = mu * 0 + g is the same with v zeroed.
    const float v = mu * velocity[i] + gi;
    velocity[i] = v;
    w[i] -= lr * (nesterov ? gi + mu * v : v);
  }
}

void adam_update_cpu(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v) {
  const AdamCoefficients c = adam_coefficients(p);
  const float b1 = p.beta1, b2 = p.beta2, eps = p.eps;
  const float step_size = c.step_size, sqrt_bc2 = c.sqrt_bc2, coupled_wd = c.coupled_wd, decay = c.decay;
#pragma omp parallel for simd schedule(static) if (n > kParallelMin)
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

}  // namespace emotune
