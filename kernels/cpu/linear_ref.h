// Reference dense-layer loops, templated on the scalar type (float for *_ref_cpu, double for
// gradient checks). Layout as kernels/linear.h: x [N, IN], w [OUT, IN], y [N, OUT].
#pragma once
#include <cstdint>

#include "kernels/linear.h"

namespace emotune {

template <typename T>
void linear_forward_ref(const LinearShape& p, const T* x, const T* w, const T* b, T* y) {
  for (int n = 0; n < p.n; ++n)
    for (int o = 0; o < p.out; ++o) {
      T sum = b ? b[o] : T(0);
      for (int i = 0; i < p.in; ++i) sum += x[(int64_t)n * p.in + i] * w[(int64_t)o * p.in + i];
      y[(int64_t)n * p.out + o] = sum;
    }
}

// dx = dy * w, dw = dy^T * x, db = column sums of dy; null outputs are skipped, others overwritten.
template <typename T>
void linear_backward_ref(const LinearShape& p, const T* x, const T* w, const T* dy, T* dx, T* dw, T* db) {
  if (dx)
    for (int n = 0; n < p.n; ++n)
      for (int i = 0; i < p.in; ++i) {
        T sum = T(0);
        for (int o = 0; o < p.out; ++o) sum += dy[(int64_t)n * p.out + o] * w[(int64_t)o * p.in + i];
        dx[(int64_t)n * p.in + i] = sum;
      }
  if (dw)
    for (int o = 0; o < p.out; ++o)
      for (int i = 0; i < p.in; ++i) {
        T sum = T(0);
        for (int n = 0; n < p.n; ++n) sum += dy[(int64_t)n * p.out + o] * x[(int64_t)n * p.in + i];
        dw[(int64_t)o * p.in + i] = sum;
      }
  if (db)
    for (int o = 0; o < p.out; ++o) {
      T sum = T(0);
      for (int n = 0; n < p.n; ++n) sum += dy[(int64_t)n * p.out + o];
      db[o] = sum;
    }
}

}  // namespace emotune
