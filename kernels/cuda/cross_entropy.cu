// Softmax cross-entropy fused with its gradient, on the GPU, in the formulation of
// kernels/cpu/cross_entropy_ref.h (sums in double). Three small launches, all deterministic:
//   rows:   one warp per row: stable log-sum-exp (max subtracted), the row's weighted loss and
//           its weight sum S_i = sum_c w_c t'_ic;
//   finish: one block adds the rows in a fixed order: loss = sum loss_i / D, D = sum_i S_i;
//   grad:   dlogits_ij = (S_i softmax(z_i)_j - w_j t'_ij) / D.
#include <string>

#include "kernels/cross_entropy.h"
#include "kernels/cuda/common.cuh"

namespace emotune {

namespace {

__device__ __forceinline__ double smoothed(const float* targets, int64_t i, int c, int classes, double ls) {
  return (1.0 - ls) * (double)targets[i * classes + c] + ls / classes;
}

__device__ __forceinline__ double class_w(const float* w, int c) { return w ? (double)w[c] : 1.0; }

constexpr int kRowThreads = 256;  // 8 warps, one row each

__global__ void ce_rows_kernel(CrossEntropyShape p, const float* __restrict__ logits,
                               const float* __restrict__ targets, const float* __restrict__ weight,
                               double ls, double* row_loss, double* row_s, double* row_lse) {
  const int lane = threadIdx.x & 31;
  const int64_t i = (int64_t)blockIdx.x * (blockDim.x / 32) + threadIdx.x / 32;
  if (i >= p.n) return;  // whole warps leave together: the shuffles below stay full-warp
  const float* z = logits + i * p.c;
  double zmax = -INFINITY;
  for (int c = lane; c < p.c; c += 32) zmax = fmax(zmax, (double)z[c]);
  zmax = warp_reduce_max(zmax);
  double sumexp = 0;
  for (int c = lane; c < p.c; c += 32) sumexp += exp((double)z[c] - zmax);
  sumexp = warp_reduce_sum(sumexp);
  const double lse = zmax + log(sumexp);
  double s = 0, loss = 0;
  for (int c = lane; c < p.c; c += 32) {
    const double wt = class_w(weight, c) * smoothed(targets, i, c, p.c, ls);
    s += wt;
    loss += wt * (lse - (double)z[c]);
  }
  s = warp_reduce_sum(s);
  loss = warp_reduce_sum(loss);
  if (lane == 0) {
    row_loss[i] = loss;
    row_s[i] = s;
    row_lse[i] = lse;
  }
}

__global__ void ce_finish_kernel(int n, const double* row_loss, const double* row_s, double* denom,
                                 float* loss) {
  __shared__ double shared[32];
  double total = 0, d = 0;
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    total += row_loss[i];
    d += row_s[i];
  }
  total = block_reduce_sum(total, shared);
  d = block_reduce_sum(d, shared);
  if (threadIdx.x == 0) {
    denom[0] = d;
    loss[0] = (float)(total / d);
  }
}

__global__ void ce_grad_kernel(CrossEntropyShape p, const float* __restrict__ logits,
                               const float* __restrict__ targets, const float* __restrict__ weight,
                               double ls, const double* row_s, const double* row_lse,
                               const double* denom, float* __restrict__ dlogits) {
  const int64_t total = (int64_t)p.n * p.c;
  const double d = denom[0];
  EMOTUNE_GRID_STRIDE(k, total) {
    const int64_t i = k / p.c;
    const int c = (int)(k - i * p.c);
    const double prob = exp((double)logits[k] - row_lse[i]);
    dlogits[k] = (float)((row_s[i] * prob - class_w(weight, c) * smoothed(targets, i, c, p.c, ls)) / d);
  }
}

}  // namespace

void softmax_cross_entropy_cuda(const CrossEntropyShape& p, const float* logits, const float* targets,
                                const float* class_weight, float label_smoothing, float* loss,
                                float* dlogits) {
  if (p.n < 1 || p.c < 1)
    throw Error("softmax_cross_entropy_cuda: invalid shape n " + std::to_string(p.n) + ", c " +
                std::to_string(p.c));
  DeviceScratch<double> scratch(3 * (int64_t)p.n + 1);
  double* row_loss = scratch.ptr;
  double* row_s = row_loss + p.n;
  double* row_lse = row_s + p.n;
  double* denom = row_lse + p.n;
  const double ls = label_smoothing;
  const int rows_per_block = kRowThreads / 32;
  ce_rows_kernel<<<ceil_div(p.n, rows_per_block), kRowThreads, 0, cuda_stream()>>>(
      p, logits, targets, class_weight, ls, row_loss, row_s, row_lse);
  EMOTUNE_LAUNCH_CHECK();
  ce_finish_kernel<<<1, 256, 0, cuda_stream()>>>(p.n, row_loss, row_s, denom, loss);
  EMOTUNE_LAUNCH_CHECK();
  const int64_t total = (int64_t)p.n * p.c;
  ce_grad_kernel<<<grid_for(total, 256), 256, 0, cuda_stream()>>>(p, logits, targets, class_weight, ls,
                                                                   row_s, row_lse, denom, dlogits);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune
