// batch_norm on the CPU, one OpenMP task per channel (channels are independent, so the result
// does not depend on the thread count). Training forward and backward are the reference's
// arithmetic (batch_norm_ref.h: statistics and the per-value formulas in double, one rounding to
// float) in loops that vectorise: each sum is kept in kLanes double partial sums, value i of a
// plane going to partial i % kLanes, added in a fixed order at the end, so a result does not depend
// on the thread count. Compiled for AVX-512, AVX2 and SSE2 (kernels/cpu/simd.h; the first two may
// fuse a multiply-add in double, so CPUs of different kinds can differ in a float's last bit): the
// reference's scalar loops (a double add's latency per value) were 11% of a vgg training step on
// Zen 4.
#include "kernels/batch_norm.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "kernels/cpu/batch_norm_ref.h"
#include "kernels/cpu/simd.h"

namespace emotune {

namespace {

bool worth_threads(const BatchNormShape& p) { return p.size() > 32768; }

constexpr int kLanes = 16;

// The partial sums added in their fixed order.
inline double lane_total(const double* acc) {
  double t = 0;
  for (int l = 0; l < kLanes; ++l) t += acc[l];
  return t;
}

// The channel's sum of x and then of (x - mean)^2 (two passes: no cancellation), the two
// statistics the reference computes.
EMOTUNE_SIMD_CLONES void channel_moments(const BatchNormShape& p, const float* x, int c, double* mean_out,
                                         double* sq_out) {
  const int64_t m = (int64_t)p.n * p.hw;
  double acc[kLanes] = {};
  for (int n = 0; n < p.n; ++n) {
    const float* xc = x + ((int64_t)n * p.c + c) * p.hw;
    int i = 0;
    for (; i + kLanes <= p.hw; i += kLanes)
      for (int l = 0; l < kLanes; ++l) acc[l] += (double)xc[i + l];
    for (int l = 0; i < p.hw; ++i, ++l) acc[l] += (double)xc[i];
  }
  const double mean = lane_total(acc) / (double)m;
  for (double& a : acc) a = 0;
  for (int n = 0; n < p.n; ++n) {
    const float* xc = x + ((int64_t)n * p.c + c) * p.hw;
    int i = 0;
    for (; i + kLanes <= p.hw; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const double d = (double)xc[i + l] - mean;
        acc[l] += d * d;
      }
    for (int l = 0; i < p.hw; ++i, ++l) {
      const double d = (double)xc[i] - mean;
      acc[l] += d * d;
    }
  }
  *mean_out = mean;
  *sq_out = lane_total(acc);
}

// y = gamma * ((x - mean) * invstd) + beta in double, rounded once; then with `relu`, relu of that
// float (elementwise.cpp's relu: a NaN passes).
template <bool relu>
EMOTUNE_SIMD_CLONES void channel_normalise(const BatchNormShape& p, const float* x, int c, double mean,
                                           double invstd, double g, double b, float* y) {
  for (int n = 0; n < p.n; ++n) {
    const float* xc = x + ((int64_t)n * p.c + c) * p.hw;
    float* yc = y + ((int64_t)n * p.c + c) * p.hw;
#pragma omp simd  // y may be x, element for element
    for (int i = 0; i < p.hw; ++i) {
      const float z = (float)(g * (((double)xc[i] - mean) * invstd) + b);
      yc[i] = !relu || !(z <= 0.0f) ? z : 0.0f;
    }
  }
}

// The gradient reaching batch_norm's output at value i: dy, or with `relu` (y = relu's output)
// relu_backward's y > 0 ? dy : 0, written as an and with the comparison's all-ones or zero mask
// (dy, or +0.0f: the same floats): GCC if-converts the plain ?: in relu_backward's loop but not
// here, where it feeds double sums, and leaves the loop scalar.
template <bool relu>
inline float upstream(const float* y, const float* dy, int64_t i) {
  const float g = dy[i];
  if constexpr (!relu) return g;
  uint32_t bits;
  std::memcpy(&bits, &g, sizeof bits);
  bits &= 0u - (uint32_t)(y[i] > 0.0f);
  float r;
  std::memcpy(&r, &bits, sizeof r);
  return r;
}

// sum g and sum g * xhat over the channel, g = upstream<relu>.
template <bool relu>
EMOTUNE_SIMD_CLONES void channel_grad_sums(const BatchNormShape& p, const float* x, const float* y,
                                           const float* dy, int c, double mean, double invstd, double* sdy_out,
                                           double* sdyx_out) {
  double a1[kLanes] = {}, a2[kLanes] = {};
  for (int n = 0; n < p.n; ++n) {
    const int64_t o = ((int64_t)n * p.c + c) * p.hw;
    const float *xc = x + o, *yc = y + o, *gc = dy + o;
    int i = 0;
    for (; i + kLanes <= p.hw; i += kLanes)
      for (int l = 0; l < kLanes; ++l) {
        const double g = upstream<relu>(yc, gc, i + l);
        a1[l] += g;
        a2[l] += g * (((double)xc[i + l] - mean) * invstd);
      }
    for (int l = 0; i < p.hw; ++i, ++l) {
      const double g = upstream<relu>(yc, gc, i);
      a1[l] += g;
      a2[l] += g * (((double)xc[i] - mean) * invstd);
    }
  }
  *sdy_out = lane_total(a1);
  *sdyx_out = lane_total(a2);
}

// dx = k * (M * g - sdy - xhat * sdyx), k = gamma * invstd / M, g = upstream<relu>, in double,
// rounded once.
template <bool relu>
EMOTUNE_SIMD_CLONES void channel_input_grad(const BatchNormShape& p, const float* x, const float* y,
                                            const float* dy, int c, double mean, double invstd, double k,
                                            double sdy, double sdyx, float* dx) {
  const double m = (double)p.n * p.hw;
  for (int n = 0; n < p.n; ++n) {
    const int64_t o = ((int64_t)n * p.c + c) * p.hw;
    const float *xc = x + o, *yc = y + o, *gc = dy + o;
    float* d = dx + o;
#pragma omp simd  // dx may be dy, element for element
    for (int i = 0; i < p.hw; ++i) {
      const double xhat = ((double)xc[i] - mean) * invstd;
      d[i] = (float)(k * (m * (double)upstream<relu>(yc, gc, i) - sdy - xhat * sdyx));
    }
  }
}

}  // namespace

namespace {

template <bool relu>
void forward_train(const BatchNormShape& p, const float* x, const float* gamma, const float* beta, float eps,
                   float momentum, float* running_mean, float* running_var, float* y, float* save_mean,
                   float* save_invstd) {
  const int64_t m = (int64_t)p.n * p.hw;
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int c = 0; c < p.c; ++c) {
    double mean, sq;
    channel_moments(p, x, c, &mean, &sq);
    const double var = sq / (double)m;  // biased: normalises this batch
    const double invstd = 1.0 / std::sqrt(var + (double)eps);
    channel_normalise<relu>(p, x, c, mean, invstd, gamma[c], beta[c], y);
    save_mean[c] = (float)mean;
    save_invstd[c] = (float)invstd;
    // Unbiased variance for the running estimate, as the reference (batch_norm_ref.h).
    const double unbiased = m > 1 ? sq / (double)(m - 1) : var;
    running_mean[c] = (float)((1.0 - (double)momentum) * (double)running_mean[c] + (double)momentum * mean);
    running_var[c] = (float)((1.0 - (double)momentum) * (double)running_var[c] + (double)momentum * unbiased);
  }
}

template <bool relu>
void backward(const BatchNormShape& p, const float* x, const float* y, const float* dy, const float* gamma,
              const float* save_mean, const float* save_invstd, float* dx, float* dgamma, float* dbeta) {
  const double m = (double)p.n * p.hw;
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int c = 0; c < p.c; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sdy, sdyx;
    channel_grad_sums<relu>(p, x, y, dy, c, mean, invstd, &sdy, &sdyx);
    if (dbeta) dbeta[c] = (float)sdy;
    if (dgamma) dgamma[c] = (float)sdyx;
    channel_input_grad<relu>(p, x, y, dy, c, mean, invstd, (double)gamma[c] * invstd / m, sdy, sdyx, dx);
  }
}

}  // namespace

void batch_norm_forward_train_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean,
                                  float* running_var, float* y, float* save_mean, float* save_invstd) {
  forward_train<false>(p, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd);
}

void batch_norm_relu_forward_train_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                       const float* beta, float eps, float momentum, float* running_mean,
                                       float* running_var, float* y, float* save_mean, float* save_invstd) {
  forward_train<true>(p, x, gamma, beta, eps, momentum, running_mean, running_var, y, save_mean, save_invstd);
}

void batch_norm_forward_eval_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean,
                                 const float* running_var, float eps, float* y) {
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int c = 0; c < p.c; ++c)
    batch_norm_forward_eval_ref<float>(p, x, gamma, beta, running_mean, running_var, eps, y, c, c + 1);
}

void batch_norm_backward_cpu(const BatchNormShape& p, const float* x, const float* dy,
                             const float* gamma, const float* save_mean, const float* save_invstd,
                             float* dx, float* dgamma, float* dbeta) {
  backward<false>(p, x, /*y, unread=*/dy, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

void batch_norm_relu_backward_cpu(const BatchNormShape& p, const float* x, const float* y, const float* dy,
                                  const float* gamma, const float* save_mean, const float* save_invstd,
                                  float* dx, float* dgamma, float* dbeta) {
  backward<true>(p, x, y, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta);
}

}  // namespace emotune
