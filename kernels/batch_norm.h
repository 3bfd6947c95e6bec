// batch_norm over the channel axis of x viewed as [N, C, HW] (HW = 1 after a dense layer).
// Training: per-channel batch mean and biased variance normalise x;
//   y = gamma * (x - mean) * invstd + beta,   invstd = 1 / sqrt(var + eps)
//   save_mean / save_invstd [C] keep the statistics for backward;
//   running = (1 - momentum) * running + momentum * batch, with the UNBIASED batch variance
//   for running_var (PyTorch's convention; Keras' momentum 0.99 is momentum 0.01 here).
// Eval: the running statistics replace the batch ones; nothing is updated.
// Backward (training mode): dx, dgamma, dbeta overwritten.
// batch_norm_relu (CPU only; ops::batch_norm_relu composes the two ops where a device lacks it):
// training forward and backward of relu(batch_norm(x)) in the passes of batch_norm alone,
//   y = relu(z), z = the training forward's y above (rounded to float first, as the pair does)
//   backward: dz = y > 0 ? dy : 0 (relu_backward's mask: z > 0 exactly when y > 0, a NaN
//   included), then batch_norm's backward on dz
// so values and gradients equal those of the two ops run one by one, bit for bit.
#pragma once
#include <cstdint>

namespace emotune {

struct BatchNormShape {
  int n = 1, c = 1, hw = 1;
  int64_t size() const { return (int64_t)n * c * hw; }
};

void batch_norm_forward_train_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                  const float* beta, float eps, float momentum, float* running_mean,
                                  float* running_var, float* y, float* save_mean, float* save_invstd);
void batch_norm_forward_eval_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                 const float* beta, const float* running_mean,
                                 const float* running_var, float eps, float* y);
void batch_norm_backward_cpu(const BatchNormShape& p, const float* x, const float* dy,
                             const float* gamma, const float* save_mean, const float* save_invstd,
                             float* dx, float* dgamma, float* dbeta);
void batch_norm_relu_forward_train_cpu(const BatchNormShape& p, const float* x, const float* gamma,
                                       const float* beta, float eps, float momentum, float* running_mean,
                                       float* running_var, float* y, float* save_mean, float* save_invstd);
void batch_norm_relu_backward_cpu(const BatchNormShape& p, const float* x, const float* y, const float* dy,
                                  const float* gamma, const float* save_mean, const float* save_invstd,
                                  float* dx, float* dgamma, float* dbeta);

void batch_norm_forward_train_cuda(const BatchNormShape& p, const float* x, const float* gamma,
                                   const float* beta, float eps, float momentum, float* running_mean,
                                   float* running_var, float* y, float* save_mean, float* save_invstd);
void batch_norm_forward_eval_cuda(const BatchNormShape& p, const float* x, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, float eps, float* y);
void batch_norm_backward_cuda(const BatchNormShape& p, const float* x, const float* dy,
                              const float* gamma, const float* save_mean, const float* save_invstd,
                              float* dx, float* dgamma, float* dbeta);

}  // namespace emotune
