// Softmax cross-entropy on the CPU: the templated loops of cross_entropy_ref.h. Batches are a few
// hundred rows of 7 or 8 classes, far too little work to thread.
#include "kernels/cross_entropy.h"

#include "kernels/cpu/cross_entropy_ref.h"

namespace emotune {

void softmax_cross_entropy_cpu(const CrossEntropyShape& p, const float* logits, const float* targets,
                               const float* class_weight, float label_smoothing, float* loss,
                               float* dlogits) {
  softmax_cross_entropy_ref<float>(p, logits, targets, class_weight, label_smoothing, loss, dlogits);
}

}  // namespace emotune
