// Philox4x32-10 counter-based random numbers (Salmon et al., SC'11), shared by the CPU and
// CUDA kernels so that the same (seed, index) gives the same number on both devices.
// Dropout draws element i of a call from counter = offset + i: the mask never needs storing,
// backward regenerates it, and a seed reproduces a run on either device.
#pragma once
#include <cstdint>

#if defined(__CUDACC__)
#define EMOTUNE_HD __host__ __device__ __forceinline__
#else
#define EMOTUNE_HD inline
#endif

namespace emotune {

struct Philox4 {
  uint32_t v[4];
};

EMOTUNE_HD uint32_t philox_mulhilo(uint32_t a, uint32_t b, uint32_t* hi) {
  uint64_t p = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(p >> 32);
  return (uint32_t)p;
}

// 10 rounds of Philox4x32 on a 128-bit counter with a 64-bit key.
EMOTUNE_HD Philox4 philox4x32(uint64_t counter_lo, uint64_t counter_hi, uint64_t key) {
  uint32_t c0 = (uint32_t)counter_lo, c1 = (uint32_t)(counter_lo >> 32);
  uint32_t c2 = (uint32_t)counter_hi, c3 = (uint32_t)(counter_hi >> 32);
  uint32_t k0 = (uint32_t)key, k1 = (uint32_t)(key >> 32);
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = philox_mulhilo(0xD2511F53u, c0, &hi0);
    uint32_t lo1 = philox_mulhilo(0xCD9E8D57u, c2, &hi1);
    uint32_t n0 = hi1 ^ c1 ^ k0, n1 = lo1, n2 = hi0 ^ c3 ^ k1, n3 = lo0;
    c0 = n0; c1 = n1; c2 = n2; c3 = n3;
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  return Philox4{{c0, c1, c2, c3}};
}

// Uniform in [0, 1) with 24 random bits: exactly representable in float, identical on host and device.
EMOTUNE_HD float philox_uniform(uint64_t seed, uint64_t index) {
  Philox4 r = philox4x32(index, 0, seed);
  return (float)(r.v[0] >> 8) * (1.0f / 16777216.0f);
}

}  // namespace emotune
