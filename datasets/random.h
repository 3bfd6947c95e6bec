// Counter-based randomness for the data pipeline. Every random choice is a pure function of
// (seed, stream, epoch, index, draw), computed with Philox (kernels/philox.h), so batches do not
// depend on how many threads assemble them or in which order they run.
//   key  = data_rng_key(seed, stream, epoch)   one 64-bit key per (seed, purpose, epoch)
//   bits = data_rng_bits(key, index, draw)     four 32-bit words for sample `index`, draw `draw`
#pragma once
#include <cstdint>

#include "kernels/philox.h"

namespace emotune {

// Purposes, so that shuffling and augmentation never share numbers.
enum class RngStream : uint32_t { shuffle = 1, sampler = 2, augment = 3, grid = 4, mixup = 5 };

inline uint64_t data_rng_key(uint64_t seed, RngStream stream, uint64_t epoch) {
  Philox4 r = philox4x32(epoch, (uint64_t)stream, seed);
  return (uint64_t)r.v[0] | ((uint64_t)r.v[1] << 32);
}

inline Philox4 data_rng_bits(uint64_t key, uint64_t index, uint64_t draw) {
  return philox4x32(index, draw, key);
}

// Uniform in [0, 1) with 24 bits (exact in float), as philox_uniform.
inline float bits_uniform(uint32_t w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }

// Uniform integer in [0, n) by Lemire's multiply-shift (bias below n / 2^32, negligible here).
inline uint32_t bits_below(uint32_t w, uint32_t n) { return (uint32_t)(((uint64_t)w * n) >> 32); }

}  // namespace emotune
