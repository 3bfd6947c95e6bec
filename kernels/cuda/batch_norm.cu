// batch_norm on the GPU, one block per channel. Statistics are two-pass (mean, then the sum of
// squared deviations) and accumulated in double, as the CPU kernel does: a channel holds up to
// N*HW = 128*2116 values and E[x^2] - mean^2 in float would cancel. The block reduction has a
// fixed shape, so results are deterministic. Memory-bound: x is read three times per channel,
// mostly from L2.
#include <string>

#include "kernels/batch_norm.h"
#include "kernels/cuda/common.cuh"

namespace emotune {

namespace {

constexpr int kThreads = 512;

// Element j of channel c in [N, C, HW] (j runs over the N*HW values of the channel).
__device__ __forceinline__ int64_t channel_index(const BatchNormShape& p, int c, int64_t j) {
  const int64_t n = j / p.hw, i = j - n * p.hw;
  return (n * p.c + c) * p.hw + i;
}

__global__ void batch_norm_forward_train_kernel(BatchNormShape p, const float* x,
                                                const float* __restrict__ gamma,
                                                const float* __restrict__ beta, float eps,
                                                float momentum, float* running_mean,
                                                float* running_var, float* y,
                                                float* save_mean, float* save_invstd) {
  __shared__ double shared[32];
  const int c = blockIdx.x;
  const int64_t m = (int64_t)p.n * p.hw;
  double s = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) s += (double)x[channel_index(p, c, j)];
  const double mean = block_reduce_sum(s, shared) / (double)m;
  double sq = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const double d = (double)x[channel_index(p, c, j)] - mean;
    sq += d * d;
  }
  sq = block_reduce_sum(sq, shared);
  const double var = sq / (double)m;
  const double invstd = 1.0 / sqrt(var + (double)eps);
  const double g = gamma[c], b = beta[c];
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t idx = channel_index(p, c, j);
    y[idx] = (float)(g * (((double)x[idx] - mean) * invstd) + b);
  }
  if (threadIdx.x == 0) {
    save_mean[c] = (float)mean;
    save_invstd[c] = (float)invstd;
    // Unbiased variance for the running estimate; a single value per channel has none, so the
    // biased one is used (as the CPU kernel does).
    const double unbiased = m > 1 ? sq / (double)(m - 1) : var;
    running_mean[c] = (float)((1.0 - (double)momentum) * (double)running_mean[c] + (double)momentum * mean);
    running_var[c] = (float)((1.0 - (double)momentum) * (double)running_var[c] + (double)momentum * unbiased);
  }
}

__global__ void batch_norm_forward_eval_kernel(BatchNormShape p, const float* x,
                                               const float* __restrict__ gamma,
                                               const float* __restrict__ beta,
                                               const float* __restrict__ running_mean,
                                               const float* __restrict__ running_var, float eps,
                                               float* y) {  // y may alias x
  const int64_t total = (int64_t)p.n * p.c * p.hw;
  EMOTUNE_GRID_STRIDE(i, total) {
    const int c = (int)((i / p.hw) % p.c);
    const float invstd = 1.0f / sqrtf(running_var[c] + eps);
    const float scale = gamma[c] * invstd, shift = beta[c] - running_mean[c] * scale;
    y[i] = x[i] * scale + shift;
  }
}

__global__ void batch_norm_backward_kernel(BatchNormShape p, const float* __restrict__ x,
                                           const float* __restrict__ dy,
                                           const float* __restrict__ gamma,
                                           const float* __restrict__ save_mean,
                                           const float* __restrict__ save_invstd,
                                           float* __restrict__ dx, float* dgamma, float* dbeta) {
  __shared__ double shared[32];
  const int c = blockIdx.x;
  const int64_t m = (int64_t)p.n * p.hw;
  const double mean = save_mean[c], invstd = save_invstd[c];
  double sdy = 0, sdyx = 0;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t idx = channel_index(p, c, j);
    const double g = dy[idx];
    sdy += g;
    sdyx += g * (((double)x[idx] - mean) * invstd);
  }
  sdy = block_reduce_sum(sdy, shared);
  sdyx = block_reduce_sum(sdyx, shared);
  if (threadIdx.x == 0) {
    if (dbeta) dbeta[c] = (float)sdy;
    if (dgamma) dgamma[c] = (float)sdyx;
  }
  const double md = (double)m;
  const double k = (double)gamma[c] * invstd / md;
  for (int64_t j = threadIdx.x; j < m; j += blockDim.x) {
    const int64_t idx = channel_index(p, c, j);
    const double xhat = ((double)x[idx] - mean) * invstd;
    dx[idx] = (float)(k * (md * (double)dy[idx] - sdy - xhat * sdyx));
  }
}

void check_shape(const BatchNormShape& p, const char* fn) {
  if (p.n < 1 || p.c < 1 || p.hw < 1)
    throw Error(std::string(fn) + ": invalid shape n " + std::to_string(p.n) + ", c " +
                std::to_string(p.c) + ", hw " + std::to_string(p.hw));
}

}  // namespace

void batch_norm_forward_train_cuda(const BatchNormShape& p, const float* x, const float* gamma,
                                   const float* beta, float eps, float momentum, float* running_mean,
                                   float* running_var, float* y, float* save_mean, float* save_invstd) {
  check_shape(p, "batch_norm_forward_train_cuda");
  batch_norm_forward_train_kernel<<<p.c, kThreads, 0, cuda_stream()>>>(
      p, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd);
  EMOTUNE_LAUNCH_CHECK();
}

void batch_norm_forward_eval_cuda(const BatchNormShape& p, const float* x, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, float eps, float* y) {
  check_shape(p, "batch_norm_forward_eval_cuda");
  batch_norm_forward_eval_kernel<<<grid_for(p.size(), 256), 256, 0, cuda_stream()>>>(
      p, x, gamma, beta, running_mean, running_var, eps, y);
  EMOTUNE_LAUNCH_CHECK();
}

void batch_norm_backward_cuda(const BatchNormShape& p, const float* x, const float* dy,
                              const float* gamma, const float* save_mean, const float* save_invstd,
                              float* dx, float* dgamma, float* dbeta) {
  check_shape(p, "batch_norm_backward_cuda");
  batch_norm_backward_kernel<<<p.c, kThreads, 0, cuda_stream()>>>(p, x, dy, gamma, save_mean,
                                                                   save_invstd, dx, dgamma, dbeta);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune
