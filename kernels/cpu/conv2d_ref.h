// Reference conv2d loops, templated on the scalar type so that the tests can run finite-difference
// gradient checks in double on exactly the code that float instantiates. Plain loops, no tricks:
// this is the truth that the im2col + sgemm fast path and the CUDA kernels are checked against.
// The only concession to speed is the loop order (the output column q innermost, so the compiler
// can vectorise it); the sums are the formulas of kernels/conv2d.h term by term.
#pragma once
#include <cstdint>

#include "kernels/conv2d.h"

namespace emotune {

// y[n,k,p,q] = b[k] + sum_{c,r,s} x[n,c,p*sh-ph+r,q*sw-pw+s] * w[k,c,r,s]   (zero padding)
template <typename T>
void conv2d_forward_ref(const Conv2dShape& p, const T* x, const T* w, const T* b, T* y) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int n = 0; n < p.n; ++n)
    for (int k = 0; k < p.k; ++k) {
      T* yk = y + ((int64_t)n * p.k + k) * oh * ow;
      for (int i = 0; i < oh * ow; ++i) yk[i] = b ? b[k] : T(0);
      for (int c = 0; c < p.c; ++c) {
        const T* xc = x + ((int64_t)n * p.c + c) * p.h * p.w;
        for (int r = 0; r < p.r; ++r)
          for (int s = 0; s < p.s; ++s) {
            const T wv = w[(((int64_t)k * p.c + c) * p.r + r) * p.s + s];
            for (int oy = 0; oy < oh; ++oy) {
              const int iy = oy * p.stride_h - p.pad_h + r;
              if (iy < 0 || iy >= p.h) continue;  // zero padding contributes nothing
              for (int ox = 0; ox < ow; ++ox) {
                const int ix = ox * p.stride_w - p.pad_w + s;
                if (ix >= 0 && ix < p.w) yk[oy * ow + ox] += xc[iy * p.w + ix] * wv;
              }
            }
          }
      }
    }
}

// dx = dL/dx: the adjoint of the forward sum, scattered term by term (overwrites dx).
template <typename T>
void conv2d_backward_input_ref(const Conv2dShape& p, const T* dy, const T* w, T* dx) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int64_t i = 0; i < p.x_size(); ++i) dx[i] = T(0);
  for (int n = 0; n < p.n; ++n)
    for (int c = 0; c < p.c; ++c) {
      T* dxc = dx + ((int64_t)n * p.c + c) * p.h * p.w;
      for (int k = 0; k < p.k; ++k) {
        const T* dyk = dy + ((int64_t)n * p.k + k) * oh * ow;
        for (int r = 0; r < p.r; ++r)
          for (int s = 0; s < p.s; ++s) {
            const T wv = w[(((int64_t)k * p.c + c) * p.r + r) * p.s + s];
            for (int oy = 0; oy < oh; ++oy) {
              const int iy = oy * p.stride_h - p.pad_h + r;
              if (iy < 0 || iy >= p.h) continue;
              for (int ox = 0; ox < ow; ++ox) {
                const int ix = ox * p.stride_w - p.pad_w + s;
                if (ix >= 0 && ix < p.w) dxc[iy * p.w + ix] += dyk[oy * ow + ox] * wv;
              }
            }
          }
      }
    }
}

// dw[k,c,r,s] = sum_{n,p,q} dy[n,k,p,q] * x[n,c,p*sh-ph+r,q*sw-pw+s];  db[k] = sum_{n,p,q} dy
// (both overwritten; db may be null).
template <typename T>
void conv2d_backward_weight_ref(const Conv2dShape& p, const T* x, const T* dy, T* dw, T* db) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int k = 0; k < p.k; ++k) {
    for (int c = 0; c < p.c; ++c)
      for (int r = 0; r < p.r; ++r)
        for (int s = 0; s < p.s; ++s) {
          T sum = T(0);
          for (int n = 0; n < p.n; ++n) {
            const T* dyk = dy + ((int64_t)n * p.k + k) * oh * ow;
            const T* xc = x + ((int64_t)n * p.c + c) * p.h * p.w;
            for (int oy = 0; oy < oh; ++oy) {
              const int iy = oy * p.stride_h - p.pad_h + r;
              if (iy < 0 || iy >= p.h) continue;
              for (int ox = 0; ox < ow; ++ox) {
                const int ix = ox * p.stride_w - p.pad_w + s;
                if (ix >= 0 && ix < p.w) sum += dyk[oy * ow + ox] * xc[iy * p.w + ix];
              }
            }
          }
          dw[(((int64_t)k * p.c + c) * p.r + r) * p.s + s] = sum;
        }
    if (db) {
      T sum = T(0);
      for (int n = 0; n < p.n; ++n) {
        const T* dyk = dy + ((int64_t)n * p.k + k) * oh * ow;
        for (int i = 0; i < oh * ow; ++i) sum += dyk[i];
      }
      db[k] = sum;
    }
  }
}

}  // namespace emotune
