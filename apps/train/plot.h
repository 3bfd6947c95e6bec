// Plots people would rather see than read, drawn with OpenCV and written as PNG:
// training curves (loss and accuracy per epoch, train vs validation), the confusion matrix
// (row-normalised heat map with counts) and reliability diagrams (calibration.h).
#pragma once
#include <string>
#include <vector>

#include "apps/train/calibration.h"

namespace emotune {

struct CurveSeries {
  std::string label;
  std::vector<double> values;  // one per epoch; NaN = missing
};

// Two panels side by side: losses (left) and accuracies in % (right).
void plot_training_curves(const std::string& path, const std::vector<CurveSeries>& losses,
                          const std::vector<CurveSeries>& accuracies, const std::string& title);

void plot_confusion_matrix(const std::string& path, const std::vector<std::vector<int>>& confusion,
                           const std::vector<std::string>& class_names, const std::string& title);

// Reliability diagrams side by side, one per panel (e.g. before and after temperature scaling):
// per confidence bin the accuracy as a bar and its gap to the bin's mean confidence in red, the
// diagonal (perfect calibration), the share of faces per bin below, ECE and NLL in the heading.
struct ReliabilityPanel {
  std::string heading;  // "T = 1" ...
  CalibrationStats stats;
};
void plot_reliability_diagram(const std::string& path, const std::vector<ReliabilityPanel>& panels,
                              const std::string& title);

}  // namespace emotune
