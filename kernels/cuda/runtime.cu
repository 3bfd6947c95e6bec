// Device discovery, the one stream, copies and synchronisation for the CUDA backend.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"

namespace emotune {

int device_count_cuda() {
  // Asked once: with no driver or no GPU, cudaGetDeviceCount fails; that means "0 devices",
  // not an error, so the CPU-only path keeps working on machines without a GPU.
  static const int count = [] {
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
      (void)cudaGetLastError();
      return 0;
    }
    return n;
  }();
  return count;
}

cudaStream_t cuda_stream() {
  static cudaStream_t stream = [] {
    cudaStream_t s = nullptr;
    EMOTUNE_CUDA_CHECK(cudaStreamCreate(&s));  // never destroyed: lives as long as the context
    return s;
  }();
  return stream;
}

int cuda_sm_count() {
  static const int count = [] {
    int dev = 0, n = 0;
    EMOTUNE_CUDA_CHECK(cudaGetDevice(&dev));
    EMOTUNE_CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    return n;
  }();
  return count;
}

namespace {
// Set by the engine (kernels/runtime.h, CudaSettings), before the first launch and rarely after.
std::atomic<bool> g_launch_sync{false};
std::atomic<bool> g_conv_tune{true};
}  // namespace

void set_cuda_settings(const CudaSettings& s) {
  g_launch_sync.store(s.launch_sync, std::memory_order_relaxed);
  g_conv_tune.store(s.conv_tune, std::memory_order_relaxed);
}

CudaSettings cuda_settings() {
  CudaSettings s;
  s.launch_sync = g_launch_sync.load(std::memory_order_relaxed);
  s.conv_tune = g_conv_tune.load(std::memory_order_relaxed);
  return s;
}

void cuda_launch_check(const char* file, int line) {
  cuda_check(cudaGetLastError(), "kernel launch", file, line);
  if (g_launch_sync.load(std::memory_order_relaxed)) cuda_check(cudaStreamSynchronize(cuda_stream()), "kernel execution (EMOTUNE_CUDA_SYNC)", file, line);
}

void copy_h2d_cuda(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  EMOTUNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cuda_stream()));
}

void copy_d2h_cuda(void* dst, const void* src, size_t bytes) {
  if (bytes == 0) return;
  EMOTUNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cuda_stream()));
  // The contract: on return the host may read dst.
  EMOTUNE_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
}

void copy_d2d_cuda(void* dst, const void* src, size_t bytes) {
  if (bytes == 0 || dst == src) return;
  EMOTUNE_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToDevice, cuda_stream()));
}

void synchronize_cuda() { EMOTUNE_CUDA_CHECK(cudaStreamSynchronize(cuda_stream())); }

}  // namespace emotune
