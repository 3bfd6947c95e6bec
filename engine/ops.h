// The differentiable API. Each op checks shapes and devices (errors name both shapes), calls the
// kernel for the inputs' device through the dispatch table, and records its backward rule when
// an input requires gradients. All backward rules are in ops.cpp beside their forward.
// Layouts are NCHW; see kernels/<op>.h for each kernel's contract.
#pragma once
#include <cstdint>

#include "engine/tensor.h"

namespace emotune::ops {

// x [N,C,H,W], w [K,C,R,S], b [K] or undefined. Zero padding `pad` on each side.
Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad);
// relu(conv2d(...)) in one pass (the training graph's conv + ReLU pairs); same values and gradients.
Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad);
// Keras' padding names: "same" (stride 1, odd kernel: pad (r-1)/2) and "valid" (pad 0); and
// "half", pad (r-1)/2 at any stride (PyTorch's padding = k // 2: ResNet's strided 3x3 convs).
int conv2d_padding(const char* mode, int kernel, int stride);

Tensor max_pool2d(const Tensor& x, int kernel, int stride);

// x [N,C,H,W] or [N,C]; gamma, beta, running stats [C]. Training uses and updates batch statistics
// (running = (1-momentum) running + momentum batch); eval uses the running statistics.
// Eval mode (training false) passes a gradient to x only: gamma and beta must not require grad
// then (an error says so), which keeps a model trained in the wrong mode from going unnoticed.
Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps);
// relu(batch_norm(...)), in training mode in batch_norm's own passes where the device has the
// fused kernels (the CPU: kernels/batch_norm.h), else the two ops in turn; same values and
// gradients either way.
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, bool training, float momentum, float eps);

// Inverted dropout with a Philox mask drawn from (seed, offset + i); identity when !training.
Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed, uint64_t offset);

Tensor relu(const Tensor& x);
// x [N,IN], w [OUT,IN], b [OUT] or undefined.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b);
Tensor add(const Tensor& a, const Tensor& b);  // same shapes
Tensor mul(const Tensor& a, const Tensor& b);  // same shapes
Tensor scale(const Tensor& x, float alpha);
Tensor reshape(const Tensor& x, const Shape& shape);
Tensor flatten(const Tensor& x);  // [N, ...] -> [N, rest]

// Mean softmax cross-entropy of logits [N,C] against target rows [N,C] (one-hot or soft);
// class_weight [C] or undefined; returns a [1] tensor. Gradient flows to logits only.
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& class_weight,
                             float label_smoothing);
// lambda * sum(w^2), a [1] tensor (Keras' L2 regulariser).
Tensor l2_penalty(const Tensor& w, float lambda);

}  // namespace emotune::ops
