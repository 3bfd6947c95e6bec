// Scoped OpenBLAS thread count of 1, for code that parallelises around sgemm with OpenMP: each
// OpenMP thread then runs its own sgemm on its own core, instead of OpenBLAS spawning more
// threads than there are cores. The previous count is restored on exit. Not reentrant across
// host threads (OpenBLAS' thread count is process-wide): the engine runs kernels from one thread.
#pragma once
#include <cblas.h>

namespace emotune {

struct BlasSingleThread {
  int saved;
  BlasSingleThread() : saved(openblas_get_num_threads()) {
    if (saved != 1) openblas_set_num_threads(1);
  }
  ~BlasSingleThread() {
    if (saved != 1) openblas_set_num_threads(saved);
  }
  BlasSingleThread(const BlasSingleThread&) = delete;
  BlasSingleThread& operator=(const BlasSingleThread&) = delete;
};

}  // namespace emotune
