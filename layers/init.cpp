#include "layers/init.h"

#include <cmath>
#include <vector>

namespace emotune {

namespace {
thread_local bool skip_init = false;
}  // namespace

SkipInitGuard::SkipInitGuard() : previous_(skip_init) { skip_init = true; }
SkipInitGuard::~SkipInitGuard() { skip_init = previous_; }

void init_uniform(Tensor& w, float limit, Rng& rng) {
  if (skip_init) return;
  std::vector<float> v(w.numel());
  for (float& x : v) x = rng.uniform(-limit, limit);
  w.copy_from(Tensor::from_vector(w.shape(), v));
}

void init_glorot_uniform(Tensor& w, int64_t fan_in, int64_t fan_out, Rng& rng) {
  init_uniform(w, std::sqrt(6.0f / (float)(fan_in + fan_out)), rng);
}

void init_he_uniform(Tensor& w, int64_t fan_in, Rng& rng) {
  init_uniform(w, std::sqrt(6.0f / (float)fan_in), rng);
}

void init_torch_uniform(Tensor& weight, Tensor& bias, Rng& rng) {
  const float limit = 1.0f / std::sqrt((float)(weight.numel() / weight.shape()[0]));
  init_uniform(weight, limit, rng);
  if (bias.defined()) init_uniform(bias, limit, rng);
}

void init_weights(Tensor& w, const std::string& kind, int64_t fan_in, int64_t fan_out, Rng& rng) {
  if (kind == "glorot_uniform") return init_glorot_uniform(w, fan_in, fan_out, rng);
  if (kind == "he_uniform") return init_he_uniform(w, fan_in, rng);
  throw Error("unknown initialiser '" + kind + "' (glorot_uniform, he_uniform)");
}

}  // namespace emotune
