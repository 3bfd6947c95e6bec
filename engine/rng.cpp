#include "engine/rng.h"

#include <cmath>

#include "kernels/philox.h"

namespace emotune {

uint32_t Rng::next_u32() { return philox4x32(counter_++, 0x5eed, seed_).v[0]; }

float Rng::uniform() { return (float)(next_u32() >> 8) * (1.0f / 16777216.0f); }

float Rng::uniform(float lo, float hi) { return lo + (hi - lo) * uniform(); }

float Rng::normal() {
  // Box-Muller on (0, 1] x [0, 1); one value per call keeps the stream position simple.
  float u1 = 1.0f - uniform(), u2 = uniform();
  return std::sqrt(-2.0f * std::log(u1)) * std::cos(6.28318530717958647692f * u2);
}

uint64_t Rng::below(uint64_t n) {
  if (n <= 1) return 0;
  // Rejection sampling on 64 bits made of two draws.
  uint64_t limit = UINT64_MAX - UINT64_MAX % n;
  for (;;) {
    uint64_t r = ((uint64_t)next_u32() << 32) | next_u32();
    if (r < limit) return r % n;
  }
}

uint64_t derive_seed(uint64_t seed, uint64_t purpose) {
  Philox4 r = philox4x32(purpose, 0xd3e1, seed);
  return ((uint64_t)r.v[1] << 32) | r.v[2];
}

}  // namespace emotune
