// Softmax cross-entropy over logits [N, C] against target distributions [N, C] (one-hot rows for
// hard labels, vote distributions for FER+), fused with its gradient.
//   t'  = (1 - label_smoothing) * t + label_smoothing / C
//   loss = sum_i sum_c w_c t'_ic * (-log softmax(z_i)_c) / sum_i sum_c w_c t'_ic
// w (class_weight, [C]) may be null (all ones); with one-hot targets the normaliser is
// PyTorch's weighted mean. The log-softmax is computed stably (max subtracted).
// Writes loss[0] and dlogits = d loss / d logits (overwritten), both on the device of the inputs.
#pragma once

namespace emotune {

struct CrossEntropyShape {
  int n = 1, c = 1;
};

void softmax_cross_entropy_cpu(const CrossEntropyShape& p, const float* logits, const float* targets,
                               const float* class_weight, float label_smoothing, float* loss,
                               float* dlogits);
void softmax_cross_entropy_cuda(const CrossEntropyShape& p, const float* logits, const float* targets,
                                const float* class_weight, float label_smoothing, float* loss,
                                float* dlogits);

}  // namespace emotune
