// The per-epoch history of a training run and where it goes: metrics.csv (one row per epoch),
// curves.png (loss and accuracy, train vs validation), and JSON inside last.safetensors so that a
// resumed run continues the same history.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emotune {

struct EpochRecord {
  int epoch = 0;  // 0-based; metrics.csv counts from 1
  double lr = 0;  // the learning rate every step of this epoch used
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, val_macro_f1 = 0;
  double seconds = 0, images_per_s = 0;
};

nlohmann::json history_json(const std::vector<EpochRecord>& history);
std::vector<EpochRecord> history_from_json(const nlohmann::json& j);  // throws json errors on bad keys

void write_metrics_csv(const std::string& path, const std::vector<EpochRecord>& history);

// A reference accuracy curve to compare a run with (a paper's or another project's log): a CSV
// whose header is "epoch,<label>" (the label names the curve in the plot) and whose rows are
// "<epoch>,<accuracy>", epochs counted from 1, in any order, gaps allowed. Accuracies are percent
// when any of them exceeds 1, else fractions. Errors name the file and line.
struct ReferenceCurve {
  std::string label;
  std::vector<double> percent;  // index epoch - 1; NaN where the file has no value
};
ReferenceCurve read_reference_curve(const std::string& path);

// curves.png: loss and accuracy per epoch, train vs validation, and `reference` (if it has a
// label) beside the validation accuracy.
void write_curves(const std::string& path, const std::vector<EpochRecord>& history, const std::string& title,
                  const ReferenceCurve& reference = {});

}  // namespace emotune
