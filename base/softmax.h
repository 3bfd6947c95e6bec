// softmax(z / temperature) of one row of logits, on the host: the one softmax behind every
// probability emotune reports (predict_probabilities in layers/model.cpp, Grad-CAM's, evaluate's
// and calibration's in apps/train/). The training loss has its own, fused with its gradient
// (kernels/cross_entropy.h).
//
//   out[k] = exp(zk - max_j zj) / sum_j exp(zj - max_j zj),   zk = z[k] / temperature
//
// T is the precision of zk, of the exponentials and of out; the sum is always double.
//   T = float:  predict's softmax, bit for bit as it has always been computed: zk rounded to
//               float (temperature 1 skips the division, so an uncalibrated model's output is
//               what it was before temperatures existed), expf, out rounded to float.
//   T = double: evaluate's and calibration's: zk and the exponentials in double, out unrounded,
//               so that callers averaging views (TTA) sum exact quotients before their own rounding.
// In base/, the lowest floor layers/ and apps/train/ both stand on (beside preprocess.h, the
// input's side), header-only: a host loop over a few logits per face, not a device op.
#pragma once
#include <algorithm>
#include <cmath>

namespace emotune {

template <typename T>
void softmax_row(const float* z, int classes, double temperature, T* out) {
  // zk first (into out), then the max over the rounded zk, as both former copies did.
  for (int k = 0; k < classes; ++k) out[k] = temperature == 1.0 ? (T)z[k] : (T)(z[k] / temperature);
  T mx = out[0];
  for (int k = 1; k < classes; ++k) mx = std::max(mx, out[k]);
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += out[k] = std::exp(out[k] - mx);
  for (int k = 0; k < classes; ++k) out[k] = (T)(out[k] / sum);
}

}  // namespace emotune
