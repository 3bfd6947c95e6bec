#include "apps/train/evaluation.h"

#include <algorithm>
#include <cmath>

#include "apps/train/progress.h"
#include "base/softmax.h"
#include "engine/autograd.h"

namespace emotune {

EvalResult evaluate_network(Module& net, const Dataset& data, const Preprocess& pre, int num_classes,
                            const EvalOptions& opt) {
  NoGradGuard no_grad;
  net.set_training(false);
  const int side = pre.size, px = side * side;
  const int views = tta_view_count(opt.tta);
  const size_t n = data.size();
  EvalResult r;
  r.probs.assign(n * num_classes, 0.0f);
  r.logits.resize(n * views * num_classes);
  r.views = views;
  r.labels.resize(n);
  // Each chunk holds batch_size images times their views.
  const int chunk = std::max(1, opt.batch_size / views);
  std::vector<float> input((size_t)chunk * views * px), one(px);
  std::vector<double> q(num_classes);  // one view's softmax
  Progress progress("evaluate", (int64_t)n);
  double loss_sum = 0;
  for (size_t start = 0; start < n; start += chunk) {
    int m = (int)std::min<size_t>(chunk, n - start);
    for (int i = 0; i < m; ++i) {
      size_t s = start + i;
      if (data.labels[s] >= num_classes)
        throw Error(data.where(s) + ": label " + std::to_string(data.labels[s]) +
                    " is outside the model's " + std::to_string(num_classes) + " classes");
      r.labels[s] = data.labels[s];
      pre.apply(data.image(s), one.data());
      tta_views(one.data(), side, opt.tta, opt.tta_crop, input.data() + (size_t)i * views * px);
    }
    Tensor x = Tensor::from_host({(int64_t)m * views, 1, side, side}, input.data(), opt.device);
    std::vector<float> logits = net.forward(x).to_vector();
    std::copy(logits.begin(), logits.end(), r.logits.begin() + start * views * num_classes);
    for (int i = 0; i < m; ++i) {
      float* p = r.probs.data() + (start + i) * num_classes;
      for (int v = 0; v < views; ++v) {
        softmax_row(logits.data() + ((size_t)i * views + v) * num_classes, num_classes, 1.0, q.data());
        for (int c = 0; c < num_classes; ++c) p[c] += (float)(q[c] / views);  // float sums, as always
      }
      loss_sum += -std::log(std::max(1e-12, (double)p[r.labels[start + i]]));
    }
    if (opt.progress) progress.update((int64_t)(start + m), (int64_t)(start + m));
  }
  r.loss = n ? loss_sum / n : 0;
  r.metrics = compute_metrics(r.probs, r.labels, num_classes);
  r.metrics.loss = r.loss;
  return r;
}

}  // namespace emotune
