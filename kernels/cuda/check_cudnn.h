// The cuDNN overload of EMOTUNE_CUDA_CHECK (kernels/cuda/check.h). Only the benchmarks include
// this header: the library itself never links cuDNN.
#pragma once
#include <cudnn.h>

#include "kernels/cuda/check.h"

namespace emotune {

inline void cuda_check(cudnnStatus_t s, const char* expr, const char* file, int line) {
  if (s != CUDNN_STATUS_SUCCESS) throw_cuda_error("cuDNN", cudnnGetErrorString(s), expr, file, line);
}

}  // namespace emotune
