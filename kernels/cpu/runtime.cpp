// CPU "device" memory: 64-byte aligned host memory (a cache line, and the alignment AVX-512 loads
// like), plain memcpy, one device, nothing to synchronise.
#include "kernels/runtime.h"

#include <cblas.h>
#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <new>

namespace emotune {

void* alloc_cpu(size_t bytes) {
  // aligned_alloc wants a multiple of the alignment; a zero-byte request still gets a real,
  // freeable pointer so that callers can treat null as failure.
  const size_t rounded = bytes == 0 ? 64 : (bytes + 63) / 64 * 64;
  if (rounded < bytes) throw std::bad_alloc();  // size_t overflow
  void* p = std::aligned_alloc(64, rounded);
  if (!p) throw std::bad_alloc();
  return p;
}

void free_cpu(void* p) { std::free(p); }

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
  openblas_set_num_threads(n);
}

}  // namespace emotune
