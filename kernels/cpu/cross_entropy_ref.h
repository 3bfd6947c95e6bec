// Softmax cross-entropy fused with its gradient, templated on the scalar type (float for the
// kernel, double for gradient checks); the sums run in double whatever T is.
// With t' the smoothed targets, w the class weights and D = sum_i sum_c w_c t'_ic (a constant of
// the targets, not of the logits):
//   loss = sum_i sum_c w_c t'_ic * (log sum_j exp z_ij - z_ic) / D
//   dloss/dz_ij = (S_i softmax(z_i)_j - w_j t'_ij) / D,   S_i = sum_c w_c t'_ic
// log-sum-exp subtracts the row maximum, so logits of +-1e4 stay finite.
#pragma once
#include <cmath>
#include <cstdint>

#include "kernels/cross_entropy.h"

namespace emotune {

template <typename T>
void softmax_cross_entropy_ref(const CrossEntropyShape& p, const T* logits, const T* targets,
                               const T* class_weight, T label_smoothing, T* loss, T* dlogits) {
  const double ls = label_smoothing;
  auto tprime = [&](int64_t i, int c) { return (1.0 - ls) * (double)targets[i * p.c + c] + ls / p.c; };
  auto weight = [&](int c) { return class_weight ? (double)class_weight[c] : 1.0; };

  double denom = 0;
  for (int64_t i = 0; i < p.n; ++i)
    for (int c = 0; c < p.c; ++c) denom += weight(c) * tprime(i, c);

  double total = 0;
  for (int64_t i = 0; i < p.n; ++i) {
    const T* z = logits + i * p.c;
    double zmax = -INFINITY;
    for (int c = 0; c < p.c; ++c) zmax = z[c] > zmax ? (double)z[c] : zmax;
    double sumexp = 0;
    for (int c = 0; c < p.c; ++c) sumexp += std::exp((double)z[c] - zmax);
    const double lse = zmax + std::log(sumexp);
    double s = 0;
    for (int c = 0; c < p.c; ++c) {
      const double wt = weight(c) * tprime(i, c);
      s += wt;
      total += wt * (lse - (double)z[c]);
    }
    for (int c = 0; c < p.c; ++c)
      dlogits[i * p.c + c] = (T)((s * std::exp((double)z[c] - lse) - weight(c) * tprime(i, c)) / denom);
  }
  loss[0] = (T)(total / denom);
}

}  // namespace emotune
