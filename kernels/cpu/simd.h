// What the CPU kernels' plain loops share to become vector code on every x86-64 CPU:
//   EMOTUNE_SIMD_CLONES  compiles a function three times (AVX-512, AVX2 + FMA, baseline SSE2) and
//                        lets the loader pick one for the CPU at hand (GCC target_clones). The
//                        project builds for baseline x86-64, so without it a loop is SSE2 at best;
//                        with a select or a float -> double widening in it, often scalar.
//   parallel_chunks      the [0, n) of a memory-bound pass in one contiguous chunk per OpenMP
//                        thread (64-byte aligned bounds), each handed to a cloned range function:
//                        an OpenMP region's outlined body does not inherit target_clones, so the
//                        vector loop must sit in a function of its own.
// Clones are left out under the sanitizers (their resolvers run before the sanitizer runtime is up)
// and on compilers other than GCC.
#pragma once
#include <omp.h>

#include <algorithm>
#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
#define EMOTUNE_SIMD_CLONES __attribute__((target_clones("arch=x86-64-v4", "arch=haswell", "default")))
#else
#define EMOTUNE_SIMD_CLONES
#endif

namespace emotune {

// body(i0, i1) over [0, n) split into one contiguous chunk per thread, or body(0, n) directly when
// n <= serial_max (waking the other threads costs more than a short pass saves). Which thread
// gets which chunk never changes a result of an elementwise pass.
template <typename F>
void parallel_chunks(int64_t n, int64_t serial_max, F body) {
  if (n <= serial_max || omp_get_max_threads() == 1) {
    if (n > 0) body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t per = ((n + nt - 1) / nt + 15) / 16 * 16;
    const int64_t i0 = std::min(n, t * per), i1 = std::min(n, i0 + per);
    if (i0 < i1) body(i0, i1);
  }
}

}  // namespace emotune
