// Weight initialisers matching Keras' defaults, from the seeded Rng (bit-identical per seed):
//   glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out))   (Keras' default for Conv2D/Dense)
//   he_uniform:     U(-l, l), l = sqrt(6 / fan_in)
// Conv weights [K,C,R,S]: fan_in = C R S, fan_out = K R S. Dense [OUT,IN]: fan_in = IN, fan_out = OUT.
#pragma once
#include <string>

#include "engine/rng.h"
#include "engine/tensor.h"

namespace emotune {

// U(-limit, limit), the draw every initialiser here is built on.
void init_uniform(Tensor& w, float limit, Rng& rng);
void init_glorot_uniform(Tensor& w, int64_t fan_in, int64_t fan_out, Rng& rng);
void init_he_uniform(Tensor& w, int64_t fan_in, Rng& rng);
// PyTorch's defaults for a conv or dense layer: kernel and bias U(-1/sqrt(fan_in), 1/sqrt(fan_in))
// (kaiming_uniform with a = sqrt(5)), kernel [OUT, IN] or [K, C, R, S]: fan_in = numel / OUT
// either way; a layer without bias (undefined) keeps none. Kernel first, then bias.
void init_torch_uniform(Tensor& weight, Tensor& bias, Rng& rng);
// "glorot_uniform" | "he_uniform"; throws on anything else.
void init_weights(Tensor& w, const std::string& kind, int64_t fan_in, int64_t fan_out, Rng& rng);

// While one lives (on this thread), init_uniform leaves the weights unset (as allocated): for a
// network built only to receive a checkpoint (load_model), whose ~4.4 M random draws were a fifth
// of `emotune predict`'s time (docs/benchmarks.md, "Start-up"). Like NoGradGuard.
class SkipInitGuard {
 public:
  SkipInitGuard();
  ~SkipInitGuard();
  SkipInitGuard(const SkipInitGuard&) = delete;
  SkipInitGuard& operator=(const SkipInitGuard&) = delete;

 private:
  bool previous_;
};

}  // namespace emotune
