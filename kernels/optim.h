// Fused optimizer updates over n parameters, in place on w and the state buffers.
// SGD (PyTorch's convention): g' = g + weight_decay * w; v = momentum * v + g';
//   step = nesterov ? g' + momentum * v : v;  w -= lr * step.   (v unused when momentum == 0)
// Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; m^ = m / (1 - b1^t); v^ = v / (1 - b2^t);
//   w -= lr * m^ / (sqrt(v^) + eps). weight_decay is added to g (Adam) or, when decoupled
//   (AdamW), applied as w -= lr * weight_decay * w before the step. step t >= 1.
#pragma once
#include <cmath>
#include <cstdint>

namespace emotune {

struct SgdParams {
  float lr = 0.01f, momentum = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
};

struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f, weight_decay = 0.0f;
  bool decoupled = false;
  int64_t step = 1;
};

// The per-call Adam scalars, shared by the CPU and CUDA kernels so both use the same float
// values. The bias corrections are computed in double: 0.999^t loses digits in float long
// before t reaches a training run's length. The update of each element is then
//   w = w * decay - step_size * m / (sqrt(v) / sqrt_bc2 + eps),  g += coupled_wd * w (before).
struct AdamCoefficients {
  float step_size;   // lr / (1 - beta1^t)
  float sqrt_bc2;    // sqrt(1 - beta2^t)
  float coupled_wd;  // weight_decay added to the gradient (Adam), 0 for AdamW
  float decay;       // 1 - lr * weight_decay for AdamW (w shrinks first), 1 for Adam
};

inline AdamCoefficients adam_coefficients(const AdamParams& p) {
  const double t = (double)p.step;
  const float bc1 = (float)(1.0 - std::pow((double)p.beta1, t));
  AdamCoefficients c;
  c.sqrt_bc2 = (float)std::sqrt(1.0 - std::pow((double)p.beta2, t));
  c.step_size = p.lr / bc1;
  c.coupled_wd = p.decoupled ? 0.0f : p.weight_decay;
  c.decay = p.decoupled ? 1.0f - p.lr * p.weight_decay : 1.0f;
  return c;
}

void sgd_update_cpu(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity);
void adam_update_cpu(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v);

void sgd_update_cuda(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity);
void adam_update_cuda(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v);

}  // namespace emotune
