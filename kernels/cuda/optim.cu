// Fused optimizer updates on the GPU: one pass over w, g and the state, PyTorch's formulas as in
// kernels/cpu/optim.cpp (the same float expressions; the per-call Adam scalars come from
// adam_coefficients() in kernels/optim.h, computed on the host as for the CPU kernel).
#include "kernels/cuda/common.cuh"
#include "kernels/optim.h"

namespace emotune {

namespace {

constexpr int kThreads = 256;

__global__ void sgd_plain_kernel(int64_t n, float lr, float wd, float* w, const float* g) {
  EMOTUNE_GRID_STRIDE(i, n) w[i] -= lr * (g[i] + wd * w[i]);
}

__global__ void sgd_momentum_kernel(int64_t n, float lr, float mu, float wd, bool nesterov, float* w,
                                    const float* g, float* velocity) {
  EMOTUNE_GRID_STRIDE(i, n) {
    const float gi = g[i] + wd * w[i];
    const float v = mu * velocity[i] + gi;
    velocity[i] = v;
    w[i] -= lr * (nesterov ? gi + mu * v : v);
  }
}

__global__ void adam_kernel(int64_t n, float b1, float b2, float eps, float step_size,
                            float sqrt_bc2, float coupled_wd, float decay, float* w, const float* g,
                            float* m, float* v) {
  EMOTUNE_GRID_STRIDE(i, n) {
    const float wi = w[i] * decay;
    const float gi = g[i] + coupled_wd * w[i];
    const float mi = b1 * m[i] + (1.0f - b1) * gi;
    const float vi = b2 * v[i] + (1.0f - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    w[i] = wi - step_size * mi / (sqrtf(vi) / sqrt_bc2 + eps);
  }
}

}  // namespace

void sgd_update_cuda(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity) {
  if (n <= 0) return;
  if (p.momentum == 0.0f) {
    sgd_plain_kernel<<<grid_for(n, kThreads), kThreads, 0, cuda_stream()>>>(n, p.lr, p.weight_decay, w, g);
  } else {
    if (!velocity) throw Error("sgd_update_cuda: momentum " + std::to_string(p.momentum) + " needs a velocity buffer");
    sgd_momentum_kernel<<<grid_for(n, kThreads), kThreads, 0, cuda_stream()>>>(
        n, p.lr, p.momentum, p.weight_decay, p.nesterov, w, g, velocity);
  }
  EMOTUNE_LAUNCH_CHECK();
}

void adam_update_cuda(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v) {
  if (n <= 0) return;
  if (p.step < 1) throw Error("adam_update_cuda: step must be >= 1, got " + std::to_string(p.step));
  const AdamCoefficients c = adam_coefficients(p);
  adam_kernel<<<grid_for(n, kThreads), kThreads, 0, cuda_stream()>>>(
      n, p.beta1, p.beta2, p.eps, c.step_size, c.sqrt_bc2, c.coupled_wd, c.decay, w, g, m, v);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune
