// The provenance of a benchmark run (docs/benchmarks.md: numbers live with their device, driver,
// date, commit and command). Written into Google Benchmark's custom context, so it is printed
// above the console table and lands in the JSON "context" object that scripts/bench_*.py read.
// Every program in bench/ calls add_provenance() before running; the CUDA ones (bench/*.cu) also
// call add_gpu_provenance().
#pragma once
#include <string>

namespace emotune::bench {

// emotune_date        local time, ISO 8601
// emotune_commit      $EMOTUNE_COMMIT when set (a GPU machine without the repository), else
//                     `git rev-parse --short HEAD` of the source tree, else "unknown"
// emotune_cpu_model, emotune_hardware_threads, emotune_omp_threads (omp_get_max_threads now:
//                     call after any omp_set_num_threads), emotune_openblas (config, threads)
// emotune_loadavg_at_start  other jobs on a shared machine slow the threaded kernels
void add_provenance();

// device, sm_count, cuda_driver, cuda_runtime, cudnn of the current GPU (the keys
// scripts/bench_cuda_table.py prints). Defined in bench/provenance_cuda.cu, which only the CUDA
// benches link; call it only when device_count_cuda() > 0.
void add_gpu_provenance();

// The commit as recorded in emotune_commit.
std::string commit();

}  // namespace emotune::bench
