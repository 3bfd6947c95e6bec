// batch_norm on the CPU: the templated loops of batch_norm_ref.h, one OpenMP task per channel
// (channels are independent, so the result does not depend on the thread count).
#include "kernels/batch_norm.h"

#include "kernels/cpu/batch_norm_ref.h"

namespace emotune {

namespace {
bool worth_threads(const BatchNormShape& p) { return p.size() > 32768; }
}  // namespace

void batch_norm_forward_train_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean,
                                  float* running_var, float* y, float* save_mean, float* save_invstd) {
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int c = 0; c < p.c; ++c)
    batch_norm_forward_train_ref<float>(p, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                        save_mean, save_invstd, c, c + 1);
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
#pragma omp parallel for schedule(static) if (worth_threads(p))
  for (int c = 0; c < p.c; ++c)
    batch_norm_backward_ref<float>(p, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta, c, c + 1);
}

}  // namespace emotune
