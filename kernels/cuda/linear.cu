// linear (dense) layers through cuBLAS sgemm, plus the bias kernels.
// Row-major trick: cuBLAS is column-major, and a row-major [R, C] matrix is a column-major
// [C, R] one (its transpose), so row-major Y = A B is computed as column-major Y^T = B^T A^T:
//   forward  y[N,OUT]  = x w^T   ->  y^T  (OUT x N)  = w (op T of the [IN x OUT] view) * x^T
//   dx       dx[N,IN]  = dy w    ->  dx^T (IN x N)   = w^T * dy^T            (no transposes)
//   dw       dw[OUT,IN]= dy^T x  ->  dw^T (IN x OUT) = x^T * dy (op T of the [OUT x N] view)
// Precision: the handle's math mode is CUBLAS_DEFAULT_MATH with CUBLAS_COMPUTE_32F semantics
// (cublasSgemm), which never uses TF32 tensor cores: fp32 FFMA throughout.
#include <cublas_v2.h>

#include <mutex>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/linear.h"

namespace emotune {

namespace {

cublasHandle_t cublas_handle() {
  static cublasHandle_t handle = [] {
    cublasHandle_t h = nullptr;
    EMOTUNE_CUDA_CHECK(cublasCreate(&h));  // never destroyed: lives as long as the context
    EMOTUNE_CUDA_CHECK(cublasSetStream(h, cuda_stream()));
    EMOTUNE_CUDA_CHECK(cublasSetMathMode(h, CUBLAS_DEFAULT_MATH));
    return h;
  }();
  return handle;
}

// y[i, o] = b[o] for every row: the GEMM then accumulates onto it (beta = 1).
__global__ void broadcast_rows_kernel(int n, int out, const float* __restrict__ b, float* __restrict__ y) {
  const int64_t total = (int64_t)n * out;
  EMOTUNE_GRID_STRIDE(i, total) y[i] = b[i % out];
}

// db[o] = sum_i dy[i, o]: one thread per column, rows in order (deterministic, coalesced).
__global__ void column_sums_kernel(int n, int out, const float* __restrict__ dy, float* __restrict__ db) {
  const int o = blockIdx.x * blockDim.x + threadIdx.x;
  if (o >= out) return;
  float s = 0.0f;
  for (int i = 0; i < n; ++i) s += dy[(int64_t)i * out + o];
  db[o] = s;
}

void check_shape(const LinearShape& p, const char* fn) {
  if (p.n < 1 || p.in < 1 || p.out < 1)
    throw Error(std::string(fn) + ": invalid shape n " + std::to_string(p.n) + ", in " +
                std::to_string(p.in) + ", out " + std::to_string(p.out));
}

}  // namespace

void linear_forward_cuda(const LinearShape& p, const float* x, const float* w, const float* b, float* y) {
  check_shape(p, "linear_forward_cuda");
  const float one = 1.0f;
  float beta = 0.0f;
  if (b) {
    const int64_t total = (int64_t)p.n * p.out;
    broadcast_rows_kernel<<<grid_for(total, 256), 256, 0, cuda_stream()>>>(p.n, p.out, b, y);
    EMOTUNE_LAUNCH_CHECK();
    beta = 1.0f;
  }
  EMOTUNE_CUDA_CHECK(cublasSgemm(cublas_handle(), CUBLAS_OP_T, CUBLAS_OP_N, p.out, p.n, p.in, &one, w,
                                 p.in, x, p.in, &beta, y, p.out));
}

void linear_backward_cuda(const LinearShape& p, const float* x, const float* w, const float* dy,
                          float* dx, float* dw, float* db) {
  check_shape(p, "linear_backward_cuda");
  const float one = 1.0f, zero = 0.0f;
  if (dx)
    EMOTUNE_CUDA_CHECK(cublasSgemm(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_N, p.in, p.n, p.out, &one, w,
                                   p.in, dy, p.out, &zero, dx, p.in));
  if (dw)
    EMOTUNE_CUDA_CHECK(cublasSgemm(cublas_handle(), CUBLAS_OP_N, CUBLAS_OP_T, p.in, p.out, p.n, &one, x,
                                   p.in, dy, p.out, &zero, dw, p.in));
  if (db) {
    column_sums_kernel<<<ceil_div(p.out, 128), 128, 0, cuda_stream()>>>(p.n, p.out, dy, db);
    EMOTUNE_LAUNCH_CHECK();
  }
}

}  // namespace emotune
