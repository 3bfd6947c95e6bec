// Plots people would rather see than read, drawn with OpenCV and written as PNG:
// training curves (loss and accuracy per epoch, train vs validation) and the confusion matrix
// (row-normalised heat map with counts).
#pragma once
#include <string>
#include <vector>

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

}  // namespace emotune
