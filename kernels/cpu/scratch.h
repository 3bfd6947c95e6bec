// Per-thread scratch buffers of the CPU conv paths, kept between calls so that a forward pass or a
// training step does not fault in fresh multi-megabyte pages for every layer. One slot per use,
// because the paths nest: the inference im2col path holds its output while conv2d's im2col fills
// its columns, and training's Winograd holds the transformed filters while Winograd fills V and M.
#pragma once
#include <cstdint>
#include <vector>

namespace emotune {

enum class Scratch { columns, staging, train_filters, infer_output, winograd_v, winograd_m, winograd_du, count };

// At least n floats, owned by the calling thread (valid until its next call with the same slot).
inline float* thread_scratch(Scratch slot, int64_t n) {
  thread_local std::vector<float> buf[(int)Scratch::count];
  std::vector<float>& b = buf[(int)slot];
  if ((int64_t)b.size() < n) b.resize((size_t)n);
  return b.data();
}

// The same, its start aligned to 64 bytes (a cache line; AMX tile rows read whole lines).
inline float* aligned_scratch(Scratch slot, int64_t n) {
  float* p = thread_scratch(slot, n + 15);
  return p + ((64 - (reinterpret_cast<uintptr_t>(p) & 63)) & 63) / sizeof(float);
}

}  // namespace emotune
