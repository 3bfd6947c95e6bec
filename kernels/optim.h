// Fused optimizer updates over n parameters, in place on w and the state buffers.
// SGD (PyTorch's convention): g' = g + weight_decay * w; v = momentum * v + g';
//   step = nesterov ? g' + momentum * v : v;  w -= lr * step.   (v unused when momentum == 0)
// Adam: m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2; m^ = m / (1 - b1^t); v^ = v / (1 - b2^t);
//   w -= lr * m^ / (sqrt(v^) + eps). weight_decay is added to g (Adam) or, when decoupled
//   (AdamW), applied as w -= lr * weight_decay * w before the step. step t >= 1.
#pragma once
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

void sgd_update_cpu(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity);
void adam_update_cpu(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v);

void sgd_update_cuda(int64_t n, const SgdParams& p, float* w, const float* g, float* velocity);
void adam_update_cuda(int64_t n, const AdamParams& p, float* w, const float* g, float* m, float* v);

}  // namespace emotune
