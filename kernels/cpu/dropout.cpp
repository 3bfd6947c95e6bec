// Inverted dropout on the CPU. The mask is a pure function of (seed, offset + i) through
// kernels/philox.h, so backward regenerates it and the CUDA kernel reproduces it bit for bit.
// The scale is computed as 1.0f / (1.0f - p) in float, the same expression on both devices.
//
// Philox runs here on blocks of 64 counters at once, lane by lane in plain loops that the
// compiler turns into 16-lane (AVX-512) or 8-lane (AVX2) integer code: the 32x32->64-bit products
// are vpmuludq. One counter per element as philox_uniform draws it (the first of Philox's four
// words), so the mask equals the scalar one exactly (tests/test_dropout.cpp checks both ways).
// Scalar, one element took ~16 ns: 5% of a paper-net training step went to masks.
#include "kernels/dropout.h"

#include "kernels/philox.h"
#include "kernels/cpu/simd.h"

namespace emotune {

namespace {

constexpr int kLanes = 64;

// u[l] = philox_uniform(seed, index0 + l) for l < kLanes (enough lanes that GCC vectorises the lane loops instead of unrolling them).
// Inlined into masked_block's clones, which give it their instruction set.
__attribute__((always_inline)) inline void philox_uniform_block(uint64_t seed, uint64_t index0, float* __restrict u) {
  uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
  for (int l = 0; l < kLanes; ++l) {
    const uint64_t idx = index0 + (uint64_t)l;
    c0[l] = (uint32_t)idx;
    c1[l] = (uint32_t)(idx >> 32);
    c2[l] = 0;
    c3[l] = 0;
  }
  uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
  for (int round = 0; round < 10; ++round) {
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t p0 = (uint64_t)0xD2511F53u * c0[l], p1 = (uint64_t)0xCD9E8D57u * c2[l];
      const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[l] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[l] ^ k1;
      c1[l] = (uint32_t)p1;
      c3[l] = (uint32_t)p0;
      c0[l] = n0;
      c2[l] = n2;
    }
    k0 += 0x9E3779B9u;
    k1 += 0xBB67AE85u;
  }
  for (int l = 0; l < kLanes; ++l) u[l] = (float)(c0[l] >> 8) * (1.0f / 16777216.0f);
}

// y[l] = keep(index0 + l) ? x[l] * scale : 0 for l < len <= kLanes. x is read whatever the mask
// says (a select, not a branch: the loop vectorises; it was scalar, 2% of a vgg training step).
EMOTUNE_SIMD_CLONES void masked_block(uint64_t seed, uint64_t index0, const float* x, float p, float scale,
                                      float* y, int64_t len) {
  float u[kLanes];
  philox_uniform_block(seed, index0, u);
  if (len == kLanes) {
#pragma omp simd  // y may be x, element for element
    for (int64_t l = 0; l < kLanes; ++l) {
      const float v = x[l] * scale;
      y[l] = u[l] >= p ? v : 0.0f;
    }
    return;
  }
  for (int64_t l = 0; l < len; ++l) y[l] = u[l] >= p ? x[l] * scale : 0.0f;
}

// y = keep(i) ? x * scale : 0; shared by forward (x) and backward (dy): the same mask both ways.
void apply_mask(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  const float scale = 1.0f / (1.0f - p);
  const int64_t blocks = (n + kLanes - 1) / kLanes;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t b = 0; b < blocks; ++b) {
    const int64_t i0 = b * kLanes, len = n - i0 < kLanes ? n - i0 : kLanes;
    masked_block(seed, offset + (uint64_t)i0, x + i0, p, scale, y + i0, len);
  }
}

}  // namespace

void dropout_forward_cpu(int64_t n, const float* x, float p, uint64_t seed, uint64_t offset, float* y) {
  apply_mask(n, x, p, seed, offset, y);
}

void dropout_backward_cpu(int64_t n, const float* dy, float p, uint64_t seed, uint64_t offset, float* dx) {
  apply_mask(n, dy, p, seed, offset, dx);
}

}  // namespace emotune
