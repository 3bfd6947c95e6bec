// conv2d: 2-D cross-correlation, the op of every conv layer.
// Layouts: x [N, C, H, W], w [K, C, R, S], b [K] (may be null), y [N, K, OH, OW], all contiguous float32.
//   y[n,k,p,q] = b[k] + sum_{c,r,s} x[n, c, p*stride_h - pad_h + r, q*stride_w - pad_w + s] * w[k,c,r,s]
// Padding is zero and symmetric ("same" for a 3x3 stride-1 kernel is pad 1, "valid" is pad 0).
// Every function overwrites its outputs; the autograd engine accumulates.
//   backward_input:  dx = dL/dx given dy                      (overwrites dx)
//   backward_weight: dw = dL/dw, db = dL/db (db may be null)  (overwrites dw, db)
// Variants: *_ref_cpu are plain loops, the truth; *_cpu is the fast path (im2col + OpenBLAS, and
// Winograd for 3x3 stride-1 forward and backward-input products);
// *_cuda are the hand-written implicit-GEMM kernels (pointers on the device).
#pragma once
#include <cstdint>

namespace emotune {

struct Conv2dShape {
  int n = 1, c = 1, h = 1, w = 1;  // input
  int k = 1, r = 1, s = 1;         // filters
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;

  int out_h() const { return (h + 2 * pad_h - r) / stride_h + 1; }
  int out_w() const { return (w + 2 * pad_w - s) / stride_w + 1; }
  // Multiply-adds counted twice, as cuDNN and every benchmark table count them.
  double flops() const { return 2.0 * n * k * out_h() * out_w() * (double)c * r * s; }
  int64_t x_size() const { return (int64_t)n * c * h * w; }
  int64_t w_size() const { return (int64_t)k * c * r * s; }
  int64_t y_size() const { return (int64_t)n * k * out_h() * out_w(); }
};

void conv2d_forward_ref_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_ref_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_ref_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db);

void conv2d_forward_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx);
// The im2col + sgemm products alone; conv2d_forward_cpu and conv2d_backward_input_cpu take
// Winograd F(2x2, 3x3) instead for 3x3 stride-1 layers summing over >= 16 channels (conv2d.cpp).
void conv2d_forward_im2col_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_im2col_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db);

// The form each of a training conv's three CPU products takes under the process's settings now
// (precision, EMOTUNE_TRAIN_CONV): "direct-bf16" (kernels/cpu/conv2d_bf16_direct.h), "direct-fp32"
// (the first layer: kernels/cpu/conv2d_thin.h), "winograd2", "winograd4" (F(2x2) / F(4x4)) or
// "im2col". The dispatch of conv2d_*_cpu reads the same
// decision, so the two cannot disagree. For tools that must bound or name the arithmetic (the
// Keras oracle's bf16 check, tests/oracle).
struct Conv2dCpuForms {
  const char* forward;
  const char* backward_input;
  const char* backward_weight;
};
Conv2dCpuForms conv2d_cpu_forms(const Conv2dShape& p);

void conv2d_forward_cuda(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
// conv2d_forward, then ReLU (a NaN passing through, as relu_forward does), in one call: the training
// graph's conv + ReLU pairs (ops::conv2d_relu). CPU: Winograd's output transform applies the ReLU
// (im2col, the first layer's path, applies it after the product); CUDA: the conv, then ReLU in place.
void conv2d_forward_relu_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void conv2d_forward_relu_cuda(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void conv2d_backward_input_cuda(const Conv2dShape& p, const float* dy, const float* w, float* dx);
void conv2d_backward_weight_cuda(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db);

}  // namespace emotune
