#include "apps/train/metrics.h"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>

#include "base/error.h"

namespace emotune {

Metrics compute_metrics(const std::vector<float>& probs, const std::vector<int>& labels, int num_classes) {
  if (probs.size() != labels.size() * (size_t)num_classes)
    throw Error("metrics: " + std::to_string(probs.size()) + " scores for " +
                std::to_string(labels.size()) + " labels of " + std::to_string(num_classes) + " classes");
  Metrics m;
  m.num_classes = num_classes;
  m.count = (int)labels.size();
  m.confusion.assign(num_classes, std::vector<int>(num_classes, 0));
  int correct = 0, correct2 = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* p = probs.data() + i * num_classes;
    int y = labels[i];
    if (y < 0 || y >= num_classes) throw Error("metrics: label " + std::to_string(y) + " out of range");
    // Ties go to the lower class index, as argmax does everywhere else.
    int best = 0, second = -1;
    for (int c = 1; c < num_classes; ++c)
      if (p[c] > p[best]) best = c;
    for (int c = 0; c < num_classes; ++c)
      if (c != best && (second < 0 || p[c] > p[second])) second = c;
    m.confusion[y][best]++;
    correct += best == y;
    correct2 += best == y || second == y;
  }
  m.accuracy = m.count ? (double)correct / m.count : 0;
  m.top2 = m.count ? (double)correct2 / m.count : 0;
  m.per_class.resize(num_classes);
  double f1_sum = 0, recall_sum = 0;
  int present = 0;
  for (int c = 0; c < num_classes; ++c) {
    int tp = m.confusion[c][c], predicted = 0, actual = 0;
    for (int k = 0; k < num_classes; ++k) {
      predicted += m.confusion[k][c];
      actual += m.confusion[c][k];
    }
    ClassMetrics& cm = m.per_class[c];
    cm.support = actual;
    cm.precision = predicted ? (double)tp / predicted : 0;
    cm.recall = actual ? (double)tp / actual : 0;
    cm.f1 = cm.precision + cm.recall > 0 ? 2 * cm.precision * cm.recall / (cm.precision + cm.recall) : 0;
    if (actual) {  // classes absent from the set do not enter the macro averages
      ++present;
      f1_sum += cm.f1;
      recall_sum += cm.recall;
    }
  }
  m.macro_f1 = present ? f1_sum / present : 0;
  m.balanced_accuracy = present ? recall_sum / present : 0;
  return m;
}

std::string format_metrics(const Metrics& m, const std::vector<std::string>& names) {
  std::ostringstream os;
  char buf[256];
  std::snprintf(buf, sizeof buf,
                "samples %d  accuracy %.2f%%  top-2 %.2f%%  macro-F1 %.4f  balanced accuracy %.2f%%\n\n",
                m.count, 100 * m.accuracy, 100 * m.top2, m.macro_f1, 100 * m.balanced_accuracy);
  os << buf;
  os << "class        precision  recall     F1  support\n";
  for (int c = 0; c < m.num_classes; ++c) {
    const auto& cm = m.per_class[c];
    std::snprintf(buf, sizeof buf, "%-10s  %9.4f %7.4f %6.4f %8d\n", names[c].c_str(), cm.precision,
                  cm.recall, cm.f1, cm.support);
    os << buf;
  }
  os << "\nconfusion matrix (rows: true class, columns: predicted)\n" << std::string(10, ' ');
  for (int c = 0; c < m.num_classes; ++c) {
    std::snprintf(buf, sizeof buf, " %8.8s", names[c].c_str());
    os << buf;
  }
  os << "\n";
  for (int r = 0; r < m.num_classes; ++r) {
    std::snprintf(buf, sizeof buf, "%-10s", names[r].c_str());
    os << buf;
    for (int c = 0; c < m.num_classes; ++c) {
      std::snprintf(buf, sizeof buf, " %8d", m.confusion[r][c]);
      os << buf;
    }
    os << "\n";
  }
  return os.str();
}

std::string metrics_json(const Metrics& m, const std::vector<std::string>& names) {
  nlohmann::ordered_json j;
  j["samples"] = m.count;
  j["accuracy"] = m.accuracy;
  j["top2_accuracy"] = m.top2;
  j["macro_f1"] = m.macro_f1;
  j["balanced_accuracy"] = m.balanced_accuracy;
  if (m.loss > 0) j["loss"] = m.loss;
  j["classes"] = names;
  for (int c = 0; c < m.num_classes; ++c) {
    const auto& cm = m.per_class[c];
    j["per_class"][names[c]] = {{"precision", cm.precision}, {"recall", cm.recall},
                                {"f1", cm.f1}, {"support", cm.support}};
  }
  j["confusion"] = m.confusion;
  return j.dump(2);
}

}  // namespace emotune
