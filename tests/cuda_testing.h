// Helpers for the CUDA kernel tests (tests/test_*_cuda.cpp): a device buffer that owns its memory
// through the caching allocator, and the quick mode used under compute-sanitizer.
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <vector>

#include "kernels/runtime.h"

namespace emotune::testing {

// float buffer on the GPU; uploads at construction from host values, downloads with host().
struct DeviceBuffer {
  float* ptr = nullptr;
  size_t count = 0;

  explicit DeviceBuffer(size_t n) : count(n) {
    ptr = static_cast<float*>(alloc_cuda(n * sizeof(float)));
  }
  explicit DeviceBuffer(const std::vector<float>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { free_cuda(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void upload(const std::vector<float>& host) {
    copy_h2d_cuda(ptr, host.data(), std::min(host.size(), count) * sizeof(float));
    synchronize_cuda();  // `host` may be a temporary (poison): the copy must be done on return
  }
  std::vector<float> host() const {
    std::vector<float> v(count);
    copy_d2h_cuda(v.data(), ptr, count * sizeof(float));
    return v;
  }
  // Fill with NaN, so an element a kernel forgets to write fails the comparison.
  void poison() { upload(std::vector<float>(count, std::numeric_limits<float>::quiet_NaN())); }
};

// EMOTUNE_SANITIZE_QUICK=1 (set by scripts/gpu-check.sh under compute-sanitizer, which slows
// kernels 10-100x): smaller batches and fewer variants, every kernel still covered.
inline bool sanitize_quick() {
  const char* v = std::getenv("EMOTUNE_SANITIZE_QUICK");
  return v && *v && std::strcmp(v, "0") != 0;
}

}  // namespace emotune::testing
