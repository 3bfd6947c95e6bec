// linear (dense) layer: y[N, OUT] = x[N, IN] * w[OUT, IN]^T + b[OUT] (b may be null).
// w is stored [OUT, IN] (PyTorch's layout; a Keras kernel is its transpose).
// Backward: dx = dy * w, dw = dy^T * x, db = column sums of dy; each output may be null
// (not wanted) and is overwritten. *_ref_cpu: plain loops; *_cpu: OpenBLAS sgemm;
// *_cuda: cuBLAS sgemm.
#pragma once

namespace emotune {

struct LinearShape {
  int n = 1, in = 1, out = 1;
  double flops() const { return 2.0 * n * in * out; }
};

void linear_forward_ref_cpu(const LinearShape& p, const float* x, const float* w, const float* b, float* y);
void linear_backward_ref_cpu(const LinearShape& p, const float* x, const float* w, const float* dy,
                             float* dx, float* dw, float* db);

void linear_forward_cpu(const LinearShape& p, const float* x, const float* w, const float* b, float* y);
void linear_backward_cpu(const LinearShape& p, const float* x, const float* w, const float* dy,
                         float* dx, float* dw, float* db);

// Inference (layers/inference.h): y = x w^T + b, then ReLU when relu; the OpenMP team splits the
// output features, each thread running a single-threaded sgemm (sgemv for one row) on its slice.
void linear_infer_cpu(const LinearShape& p, const float* x, const float* w, const float* b, bool relu, float* y);

void linear_forward_cuda(const LinearShape& p, const float* x, const float* w, const float* b, float* y);
void linear_backward_cuda(const LinearShape& p, const float* x, const float* w, const float* dy,
                          float* dx, float* dw, float* db);

}  // namespace emotune
