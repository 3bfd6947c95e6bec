// Fused optimizer updates on the CPU, PyTorch's formulas (torch.optim.SGD with dampening 0,
// torch.optim.Adam / AdamW), one pass over the parameters. The bias corrections are computed once
// per call in double: 0.999^t loses digits in float long before t reaches a training run's length.
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
  const double t = (double)p.step;
  const float bc1 = (float)(1.0 - std::pow((double)p.beta1, t));
  const float sqrt_bc2 = (float)std::sqrt(1.0 - std::pow((double)p.beta2, t));
  const float b1 = p.beta1, b2 = p.beta2, eps = p.eps, lr = p.lr;
  const float step_size = lr / bc1;
  const float coupled_wd = p.decoupled ? 0.0f : p.weight_decay;
  const float decay = p.decoupled ? 1.0f - lr * p.weight_decay : 1.0f;  // AdamW shrinks w first
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
