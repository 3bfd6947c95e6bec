// GPU half of bench/provenance.h: the device and the CUDA / cuDNN versions.
#include <cuda_runtime.h>
#include <cudnn.h>
#include <benchmark/benchmark.h>

#include <string>

#include "bench/provenance.h"
#include "kernels/cuda/check.h"

namespace emotune::bench {

void add_gpu_provenance() {
  int dev = 0, driver = 0, runtime = 0;
  cudaDeviceProp prop{};
  EMOTUNE_CUDA_CHECK(cudaGetDevice(&dev));
  EMOTUNE_CUDA_CHECK(cudaGetDeviceProperties(&prop, dev));
  EMOTUNE_CUDA_CHECK(cudaDriverGetVersion(&driver));
  EMOTUNE_CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
  auto version = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
  benchmark::AddCustomContext("device", prop.name);
  benchmark::AddCustomContext("sm_count", std::to_string(prop.multiProcessorCount));
  benchmark::AddCustomContext("cuda_driver", version(driver));
  benchmark::AddCustomContext("cuda_runtime", version(runtime));
  benchmark::AddCustomContext("cudnn", std::to_string(cudnnGetVersion()));
}

}  // namespace emotune::bench
