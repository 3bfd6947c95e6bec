// Shared pieces of the CUDA kernels: index helpers, grid-stride loops, warp and block
// reductions, the one stream every launch goes to, and scratch memory from the caching allocator.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/check.h"
#include "kernels/runtime.h"

namespace emotune {

// The single stream of the CUDA backend: every kernel, copy, cuBLAS call (and cuDNN call in the
// benchmarks) goes here, so work is ordered without events and the caching allocator can hand a
// freed block to the next request at once (stream-ordered reuse). It is a blocking stream, so it
// also stays ordered with anything a library issues on the legacy default stream.
cudaStream_t cuda_stream();
// Multiprocessor count of the current device (cached).
int cuda_sm_count();

template <typename T>
__host__ __device__ constexpr T ceil_div(T a, T b) {
  return (a + b - 1) / b;
}

// Blocks for a grid-stride loop over n elements: enough to fill the machine, no more.
inline unsigned grid_for(int64_t n, int threads) {
  int64_t blocks = ceil_div<int64_t>(n, threads);
  int64_t cap = (int64_t)cuda_sm_count() * 16;
  if (blocks > cap) blocks = cap;
  return (unsigned)(blocks < 1 ? 1 : blocks);
}

#define EMOTUNE_GRID_STRIDE(i, n)                                                    \
  for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < (int64_t)(n); \
       i += (int64_t)blockDim.x * gridDim.x)

template <typename T>
__device__ __forceinline__ T warp_reduce_sum(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

template <typename T>
__device__ __forceinline__ T warp_reduce_max(T v) {
#pragma unroll
  for (int off = 16; off > 0; off >>= 1) v = max(v, __shfl_xor_sync(0xffffffffu, v, off));
  return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is returned to
// every thread. The order of additions is fixed by the launch shape, so it is deterministic.
// `shared` needs 32 elements; the function syncs before returning so it can be reused at once.
template <typename T>
__device__ T block_reduce_sum(T v, T* shared) {
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  v = warp_reduce_sum(v);
  if (lane == 0) shared[warp] = v;
  __syncthreads();
  T total = lane < warps ? shared[lane] : T(0);
  total = warp_reduce_sum(total);
  __syncthreads();
  return total;
}

// Device scratch memory from the caching allocator (no cudaMalloc in steady state). Freeing it
// right after the launches that use it is safe: everything runs on the one stream, so the next
// owner of the block is ordered after them.
template <typename T>
struct DeviceScratch {
  T* ptr = nullptr;
  explicit DeviceScratch(int64_t count) {
    if (count > 0) ptr = static_cast<T*>(alloc_cuda((size_t)count * sizeof(T)));
  }
  ~DeviceScratch() { free_cuda(ptr); }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
};

}  // namespace emotune
