// CPU "device" memory: 64-byte aligned host memory (a cache line, and the alignment AVX-512 loads
// like), plain memcpy, one device, nothing to synchronise.
#include "kernels/runtime.h"

#include <cblas.h>
#include <omp.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <new>
#include <unordered_map>

namespace emotune {

namespace {

// Blocks of 1 MiB and more are kept when freed and handed out again for the same size. A training
// step allocates the same tensors every step, and glibc serves blocks this large with fresh mmap
// pages, so every step faulted in and zeroed its activations' pages again: 10% of a batch-64 paper
// step went to the kernel's clear_page (perf). At most kIdleMax bytes stay idle; beyond that a freed
// block goes back to the system.
// Under AddressSanitizer every block goes back to malloc, so that a use after free stays visible.
#if defined(__SANITIZE_ADDRESS__)
constexpr size_t kCacheMin = ~size_t{0};
#else
constexpr size_t kCacheMin = size_t{1} << 20;
#endif
constexpr size_t kIdleMax = size_t{2} << 30;

struct BlockCache {
  std::mutex mu;
  std::unordered_map<void*, size_t> size_of;    // every large block, in use or idle
  std::unordered_multimap<size_t, void*> idle;  // freed large blocks, by size
  size_t idle_bytes = 0;
};

// Never destroyed: tensors freed during static destruction still find it.
BlockCache& block_cache() {
  static BlockCache* cache = new BlockCache;
  return *cache;
}

std::atomic<TrainConvMode> g_train_conv{TrainConvMode::auto_};

}  // namespace

void* alloc_cpu(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte request still gets a real,
  // freeable pointer so that callers can treat null as failure.
  const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  if (rounded < bytes) throw std::bad_alloc();  // size_t overflow
  if (rounded < kCacheMin) {
    void* p = std::aligned_alloc(64, rounded);
    if (!p) throw std::bad_alloc();
    return p;
  }
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  if (auto it = c.idle.find(rounded); it != c.idle.end()) {
    void* p = it->second;
    c.idle.erase(it);
    c.idle_bytes -= rounded;
    return p;
  }
  void* p = std::aligned_alloc(64, rounded);
  if (!p && c.idle_bytes) {  // out of memory with idle blocks kept: give them back, then retry
    for (auto& [size, q] : c.idle) {
      c.size_of.erase(q);
      std::free(q);
    }
    c.idle.clear();
    c.idle_bytes = 0;
    p = std::aligned_alloc(64, rounded);
  }
  if (!p) throw std::bad_alloc();
  c.size_of.emplace(p, rounded);
  return p;
}

void free_cpu(void* p) {
  if (!p) return;
  BlockCache& c = block_cache();
  std::lock_guard<std::mutex> lock(c.mu);
  auto it = c.size_of.find(p);
  if (it == c.size_of.end()) {  // a small block
    std::free(p);
    return;
  }
  if (c.idle_bytes + it->second > kIdleMax) {
    c.size_of.erase(it);
    std::free(p);
    return;
  }
  c.idle.emplace(it->second, p);
  c.idle_bytes += it->second;
}

void copy_cpu(void* dst, const void* src, size_t bytes) {
  if (bytes) std::memcpy(dst, src, bytes);
}

int device_count_cpu() { return 1; }

void synchronize_cpu() {}

BlasSerialScope::BlasSerialScope() : saved_(openblas_get_num_threads()) {
  if (saved_ != 1) openblas_set_num_threads(1);
}

BlasSerialScope::~BlasSerialScope() {
  if (saved_ != 1) openblas_set_num_threads(saved_);
}

void set_cpu_threads(int n) {
  if (n < 1) n = 1;
  omp_set_num_threads(n);
  openblas_set_num_threads(1);
}

void cpu_threads_init() { set_cpu_threads(omp_get_max_threads()); }

void set_train_conv_mode(TrainConvMode m) { g_train_conv.store(m, std::memory_order_relaxed); }
TrainConvMode train_conv_mode() { return g_train_conv.load(std::memory_order_relaxed); }

}  // namespace emotune
