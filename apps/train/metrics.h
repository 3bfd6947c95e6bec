// Classification metrics from predictions: accuracy, top-2, per-class precision / recall / F1,
// macro-F1, balanced accuracy (mean recall), and the confusion matrix (rows = true class,
// columns = predicted class).
#pragma once
#include <string>
#include <vector>

namespace emotune {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int support = 0;  // true samples of the class
};

struct Metrics {
  int num_classes = 0, count = 0;
  double accuracy = 0, top2 = 0, macro_f1 = 0, balanced_accuracy = 0, loss = 0;
  std::vector<ClassMetrics> per_class;
  std::vector<std::vector<int>> confusion;  // [true][predicted]
};

// probs: n rows of num_classes scores (probabilities or logits; only the order matters),
// labels: n true classes. loss is filled by the caller if wanted.
Metrics compute_metrics(const std::vector<float>& probs, const std::vector<int>& labels, int num_classes);

// A text table of per-class metrics and the confusion matrix, with class names.
std::string format_metrics(const Metrics& m, const std::vector<std::string>& class_names);
// The same as JSON (for model cards and scripts).
std::string metrics_json(const Metrics& m, const std::vector<std::string>& class_names);

}  // namespace emotune
