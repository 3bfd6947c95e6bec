// Runs a network over a data set in eval mode without gradients and returns class probabilities
// (softmax; and the logits), optionally averaged over test-time-augmentation views (datasets/augment.h tta_views).
// Shared by the per-epoch validation of `train` and by `evaluate`.
#pragma once
#include <vector>

#include "apps/train/metrics.h"
#include "base/preprocess.h"
#include "datasets/augment.h"
#include "datasets/dataset.h"
#include "layers/module.h"

namespace emotune {

struct EvalOptions {
  Device device = Device::cpu;
  int batch_size = 256;
  TtaMode tta = TtaMode::none;
  int tta_crop = 44;  // ten-crop side before resizing back (48 -> 44 keeps most of the face)
  bool progress = false;
};

struct EvalResult {
  std::vector<float> probs;  // [n][classes]
  std::vector<float> logits;  // [n][views][classes], as the network gave them (calibration.h)
  int views = 1;              // test-time-augmentation views per face
  std::vector<int> labels;
  double loss = 0;           // mean cross-entropy of the (averaged) probabilities vs labels
  Metrics metrics;
};

EvalResult evaluate_network(Module& net, const Dataset& data, const Preprocess& pre, int num_classes,
                            const EvalOptions& opt);

}  // namespace emotune
