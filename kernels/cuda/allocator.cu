// The caching device allocator behind alloc_cuda / free_cuda, and pinned host memory.
// Sizes are rounded up to one of four classes per power of two (at most 25% waste), and a freed
// block goes to the free list of its class instead of back to the driver, so after the first
// training step every request is served from a list: no cudaMalloc, no cudaFree (both
// synchronise the device). The cache is emptied only when cudaMalloc runs out of memory, and
// then the request is retried once. All work runs on one stream, so a block freed after its last
// launch may be handed out at once (stream-ordered reuse, as PyTorch's allocator does per stream).
#include <cuda_runtime.h>

#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "kernels/cuda/check.h"
#include "kernels/cuda/common.cuh"
#include "kernels/runtime.h"

namespace emotune {

namespace {

// 512 B minimum; then 4 classes per octave: 2^k, 1.25 2^k, 1.5 2^k, 1.75 2^k.
size_t round_size(size_t bytes) {
  if (bytes <= 512) return 512;
  size_t pow2 = 512;
  while (pow2 * 2 < bytes) pow2 *= 2;  // pow2 < bytes <= 2 pow2
  size_t quarter = pow2 / 4;
  return (bytes + quarter - 1) / quarter * quarter;
}

struct CachingAllocator {
  std::mutex mu;
  std::unordered_map<size_t, std::vector<void*>> free_lists;  // class size -> cached blocks
  std::unordered_map<void*, size_t> live;                      // block -> class size
  CudaAllocatorStats stats;

  void* alloc(size_t bytes) {
    if (bytes == 0) return nullptr;
    const size_t size = round_size(bytes);
    std::lock_guard<std::mutex> lock(mu);
    void* p = nullptr;
    auto it = free_lists.find(size);
    if (it != free_lists.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
    } else {
      cudaError_t e = cudaMalloc(&p, size);
      if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();  // clear the error, release every cached block, retry once
        release_cached_locked();
        e = cudaMalloc(&p, size);
      }
      if (e != cudaSuccess) {
        (void)cudaGetLastError();
        throw Error("CUDA out of memory: cannot allocate " + std::to_string(size) + " bytes (" +
                    std::to_string(stats.bytes_in_use) + " in use, " +
                    std::to_string(stats.bytes_reserved) + " reserved): " + cudaGetErrorString(e));
      }
      ++stats.malloc_calls;
      stats.bytes_reserved += size;
    }
    live[p] = size;
    stats.bytes_in_use += size;
    return p;
  }

  void free(void* p) {
    if (!p) return;
    std::lock_guard<std::mutex> lock(mu);
    auto it = live.find(p);
    if (it == live.end()) throw Error("free_cuda: pointer was not allocated by alloc_cuda");
    stats.bytes_in_use -= it->second;
    free_lists[it->second].push_back(p);
    live.erase(it);
  }

  void release_cached_locked() {
    // Cached blocks may still be read by queued kernels of their previous owner.
    EMOTUNE_CUDA_CHECK(cudaStreamSynchronize(cuda_stream()));
    for (auto& [size, blocks] : free_lists) {
      for (void* b : blocks) {
        EMOTUNE_CUDA_CHECK(cudaFree(b));
        stats.bytes_reserved -= size;
      }
      blocks.clear();
    }
  }
};

// Never destroyed: at exit the CUDA runtime may already be torn down, and the driver frees
// everything with the context anyway.
CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();
  return *a;
}

struct PinnedRegistry {
  std::mutex mu;
  std::unordered_set<void*> pinned;  // from cudaHostAlloc; anything else came from malloc
};

PinnedRegistry& pinned_registry() {
  static PinnedRegistry* r = new PinnedRegistry();
  return *r;
}

}  // namespace

void* alloc_cuda(size_t bytes) { return allocator().alloc(bytes); }
void free_cuda(void* p) { allocator().free(p); }

CudaAllocatorStats cuda_allocator_stats() {
  CachingAllocator& a = allocator();
  std::lock_guard<std::mutex> lock(a.mu);
  return a.stats;
}

void* alloc_pinned_cuda(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (device_count_cuda() > 0) {
    void* p = nullptr;
    EMOTUNE_CUDA_CHECK(cudaHostAlloc(&p, bytes, cudaHostAllocDefault));
    PinnedRegistry& r = pinned_registry();
    std::lock_guard<std::mutex> lock(r.mu);
    r.pinned.insert(p);
    return p;
  }
  void* p = std::malloc(bytes);
  if (!p) throw Error("alloc_pinned_cuda: out of host memory (" + std::to_string(bytes) + " bytes)");
  return p;
}

void free_pinned_cuda(void* p) {
  if (!p) return;
  PinnedRegistry& r = pinned_registry();
  bool was_pinned;
  {
    std::lock_guard<std::mutex> lock(r.mu);
    was_pinned = r.pinned.erase(p) > 0;
  }
  if (was_pinned)
    EMOTUNE_CUDA_CHECK(cudaFreeHost(p));
  else
    std::free(p);
}

}  // namespace emotune
