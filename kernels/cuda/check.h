// One error check for every CUDA-side call: the CUDA runtime, cuBLAS and (in kernels/cuda/
// check_cudnn.h, which only the benchmarks include, so the library never needs cuDNN) cuDNN.
//   EMOTUNE_CUDA_CHECK(cudaMemcpyAsync(...));
//   EMOTUNE_CUDA_CHECK(cublasSgemm(...));
// A failure throws emotune::Error naming the library's message, the call, the file and the line.
// The overloads are chosen by the status type, so one macro serves every library (ggml's CUDA_CHECK).
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <string>

#include "base/error.h"

namespace emotune {

[[noreturn]] inline void throw_cuda_error(const char* lib, const char* msg, const char* expr,
                                          const char* file, int line) {
  throw Error(std::string(lib) + " error: " + msg + "\n  in " + expr + "\n  at " + file + ":" +
              std::to_string(line));
}

inline void cuda_check(cudaError_t e, const char* expr, const char* file, int line) {
  if (e != cudaSuccess) throw_cuda_error("CUDA", cudaGetErrorString(e), expr, file, line);
}

inline void cuda_check(cublasStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUBLAS_STATUS_SUCCESS) throw_cuda_error("cuBLAS", cublasGetStatusString(s), expr, file, line);
}

// After a kernel launch: reports launch-configuration errors at once; with EMOTUNE_CUDA_SYNC=1
// (CudaSettings::launch_sync, kernels/runtime.h) it also synchronises, so an illegal address is
// reported at the launch that caused it rather than at some later call (slow: for debugging only).
void cuda_launch_check(const char* file, int line);

}  // namespace emotune

#define EMOTUNE_CUDA_CHECK(call) ::emotune::cuda_check((call), #call, __FILE__, __LINE__)
#define EMOTUNE_LAUNCH_CHECK() ::emotune::cuda_launch_check(__FILE__, __LINE__)
