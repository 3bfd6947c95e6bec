// What the CUDA benchmarks (bench/*.cu) share: the cuDNN handle on our stream, random device
// tensors, timing with CUDA events and the whole-tensor comparison used to validate ours against
// cuDNN before anything is timed. Included by exactly one source file per benchmark program.
#pragma once
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "kernels/cuda/check_cudnn.h"
#include "kernels/cuda/common.cuh"
#include "kernels/philox.h"
#include "kernels/runtime.h"

namespace emotune::bench {

inline cudnnHandle_t cudnn_handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t handle = nullptr;
    EMOTUNE_CUDA_CHECK(cudnnCreate(&handle));
    EMOTUNE_CUDA_CHECK(cudnnSetStream(handle, cuda_stream()));
    return handle;
  }();
  return h;
}

static __global__ void fill_uniform_kernel(int64_t n, uint64_t seed, float lo, float hi, float* p) {
  EMOTUNE_GRID_STRIDE(i, n) p[i] = lo + (hi - lo) * philox_uniform(seed, (uint64_t)i);
}

// A device tensor with seeded random values in [lo, hi), through the caching allocator.
struct DeviceTensor {
  float* ptr = nullptr;
  int64_t count = 0;
  DeviceTensor(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) : count(n) {
    ptr = static_cast<float*>(alloc_cuda((size_t)n * sizeof(float)));
    fill_uniform_kernel<<<grid_for(n, 256), 256, 0, cuda_stream()>>>(n, seed, lo, hi, ptr);
    EMOTUNE_LAUNCH_CHECK();
  }
  ~DeviceTensor() { free_cuda(ptr); }
  DeviceTensor(const DeviceTensor&) = delete;
  DeviceTensor& operator=(const DeviceTensor&) = delete;
  std::vector<float> host() const {
    std::vector<float> v((size_t)count);
    copy_d2h_cuda(v.data(), ptr, (size_t)count * sizeof(float));
    return v;
  }
  void upload(const std::vector<float>& v) { copy_h2d_cuda(ptr, v.data(), v.size() * sizeof(float)); }
};

// Times each iteration of fn with CUDA events on the shared stream (UseManualTime); returns the
// mean seconds per call.
template <class Fn>
double time_iterations(benchmark::State& state, Fn&& fn) {
  cudaEvent_t start, stop;
  EMOTUNE_CUDA_CHECK(cudaEventCreate(&start));
  EMOTUNE_CUDA_CHECK(cudaEventCreate(&stop));
  double total = 0;
  int64_t iters = 0;
  for (auto _ : state) {
    EMOTUNE_CUDA_CHECK(cudaEventRecord(start, cuda_stream()));
    fn();
    EMOTUNE_CUDA_CHECK(cudaEventRecord(stop, cuda_stream()));
    EMOTUNE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    EMOTUNE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    state.SetIterationTime(ms * 1e-3);
    total += ms * 1e-3;
    ++iters;
  }
  EMOTUNE_CUDA_CHECK(cudaEventDestroy(start));
  EMOTUNE_CUDA_CHECK(cudaEventDestroy(stop));
  return iters ? total / iters : 0;
}

// max |a - b| / max |b| over whole tensors (a NaN anywhere gives infinity).
inline double max_rel_error(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs((double)a[i] - b[i]);
    num = std::isnan(d) ? INFINITY : std::max(num, d);
    den = std::max(den, std::fabs((double)b[i]));
  }
  return den > 0 ? num / den : num;
}

// The cuDNN-vs-ours bookkeeping of a pair of cases registered cudnn/<key> then ours/<key>: the
// cuDNN case records its seconds and its label, ours reports ratio_vs_cudnn from the same run.
inline void record_vs_cudnn(benchmark::State& state, bool ours, const std::string& key, double seconds,
                            const char* cudnn_label) {
  static std::map<std::string, double> cudnn_seconds;
  if (!ours) {
    cudnn_seconds[key] = seconds;
    state.SetLabel(cudnn_label);
  } else if (auto it = cudnn_seconds.find(key); it != cudnn_seconds.end() && seconds > 0) {
    state.counters["ratio_vs_cudnn"] = it->second / seconds;
  }
}

}  // namespace emotune::bench
