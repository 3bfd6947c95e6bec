// Batch normalisation over x viewed as [N, C, HW], templated on the scalar type (float for the
// kernel, double for gradient checks). Statistics are summed in double whatever T is: a channel
// can hold N*HW = 16*2116 values, and a float running sum would lose the low bits of the mean.
// Each function handles channels [c0, c1), so the caller can split channels across threads
// without changing any sum. The sums are vectorised (omp simd): a few partial sums in lanes,
// added at the end, in an order fixed by the build, not by the threads.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/batch_norm.h"

namespace emotune {

template <typename T>
void batch_norm_forward_train_ref(const BatchNormShape& p, const T* x, const T* gamma, const T* beta,
                                  T eps, T momentum, T* running_mean, T* running_var, T* y,
                                  T* save_mean, T* save_invstd, int c0, int c1) {
  const int64_t m = (int64_t)p.n * p.hw;
  for (int c = c0; c < c1; ++c) {
    double sum = 0;
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
#pragma omp simd reduction(+ : sum)
      for (int i = 0; i < p.hw; ++i) sum += xc[i];
    }
    const double mean = sum / (double)m;
    double sq = 0;  // two passes: sum (x - mean)^2 does not cancel the way E[x^2] - mean^2 does
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
#pragma omp simd reduction(+ : sq)
      for (int i = 0; i < p.hw; ++i) sq += ((double)xc[i] - mean) * ((double)xc[i] - mean);
    }
    const double var = sq / (double)m;  // biased: normalises this batch
    const double invstd = 1.0 / std::sqrt(var + (double)eps);
    const double g = gamma[c], b = beta[c];
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
      T* yc = y + ((int64_t)n * p.c + c) * p.hw;
      for (int i = 0; i < p.hw; ++i) yc[i] = (T)(g * (((double)xc[i] - mean) * invstd) + b);
    }
    save_mean[c] = (T)mean;
    save_invstd[c] = (T)invstd;
    // Unbiased variance for the running estimate (PyTorch); one value per channel has none, so
    // the biased value (0) is used rather than a division by zero.
    const double unbiased = m > 1 ? sq / (double)(m - 1) : var;
    running_mean[c] = (T)((1.0 - (double)momentum) * (double)running_mean[c] + (double)momentum * mean);
    running_var[c] = (T)((1.0 - (double)momentum) * (double)running_var[c] + (double)momentum * unbiased);
  }
}

template <typename T>
void batch_norm_forward_eval_ref(const BatchNormShape& p, const T* x, const T* gamma, const T* beta,
                                 const T* running_mean, const T* running_var, T eps, T* y, int c0, int c1) {
  for (int c = c0; c < c1; ++c) {
    const T invstd = T(1) / std::sqrt(running_var[c] + eps);
    const T scale = gamma[c] * invstd, shift = beta[c] - running_mean[c] * scale;
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
      T* yc = y + ((int64_t)n * p.c + c) * p.hw;
      for (int i = 0; i < p.hw; ++i) yc[i] = xc[i] * scale + shift;
    }
  }
}

// With xhat = (x - mean) * invstd and M = N*HW values per channel:
//   dbeta = sum dy,  dgamma = sum dy * xhat,
//   dx = gamma * invstd / M * (M * dy - dbeta - xhat * dgamma)
// (the batch statistics depend on x, hence the two correction terms).
template <typename T>
void batch_norm_backward_ref(const BatchNormShape& p, const T* x, const T* dy, const T* gamma,
                             const T* save_mean, const T* save_invstd, T* dx, T* dgamma, T* dbeta,
                             int c0, int c1) {
  const double m = (double)p.n * p.hw;
  for (int c = c0; c < c1; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy = 0, sdyx = 0;
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
      const T* gc = dy + ((int64_t)n * p.c + c) * p.hw;
#pragma omp simd reduction(+ : sdy, sdyx)
      for (int i = 0; i < p.hw; ++i) {
        sdy += gc[i];
        sdyx += (double)gc[i] * (((double)xc[i] - mean) * invstd);
      }
    }
    if (dbeta) dbeta[c] = (T)sdy;
    if (dgamma) dgamma[c] = (T)sdyx;
    const double k = (double)gamma[c] * invstd / m;
    for (int n = 0; n < p.n; ++n) {
      const T* xc = x + ((int64_t)n * p.c + c) * p.hw;
      const T* gc = dy + ((int64_t)n * p.c + c) * p.hw;
      T* d = dx + ((int64_t)n * p.c + c) * p.hw;
      for (int i = 0; i < p.hw; ++i) {
        const double xhat = ((double)xc[i] - mean) * invstd;
        d[i] = (T)(k * (m * (double)gc[i] - sdy - xhat * sdyx));
      }
    }
  }
}

}  // namespace emotune
