// Ensembles for `emotune evaluate --model A --model B ...`: several models' calibrated
// probabilities averaged with equal weights. No weight is fitted and no member is chosen here, so
// an ensemble evaluated on the split it is reported on has chosen nothing on that split (which
// members to combine is the caller's decision, and docs/results.md says how it was made). Each
// member keeps its own preprocessing and its own temperature: models trained with and without
// label smoothing speak on different confidence scales, and their calibrated probabilities are the
// common one. The ensemble's prediction is the largest averaged probability, so with temperatures
// other than 1 it can differ from the average at T = 1; both are reported.
#pragma once
#include <string>
#include <vector>

#include "apps/train/calibration.h"
#include "apps/train/evaluation.h"

namespace emotune {

struct EnsembleMember {
  std::string name;        // the model file, for messages and reports
  double temperature = 1;  // the model's own (its metadata), applied to its logits
  EvalResult result;       // evaluate_network on the ensemble's faces, in the same order
};

struct EnsembleResult {
  std::vector<float> probs;       // [n][classes]: the mean of the members' probabilities at their T
  std::vector<float> probs_at_1;  // [n][classes]: the mean at T = 1
  std::vector<int> labels;
  Metrics metrics;                       // of probs (its loss: the mean NLL of probs)
  CalibrationStats at_1, calibrated;     // of probs_at_1 and probs
  std::vector<Metrics> member_metrics;   // each member alone, at its T (the same top class as T = 1)
};

// Averages the members (at least one) over the same faces. Throws emotune::Error naming the member
// when the faces, their labels or the number of classes differ.
EnsembleResult combine_ensemble(const std::vector<EnsembleMember>& members, int classes);

// The faces an ensemble is reported on: load_faces_for_report for the member whose temperature was
// fitted on a half of this split (all such members must have used the same halves, or no face is
// unseen by every one of them: then it throws, naming the two files). `calibration_jsons` holds
// each member's "calibration" metadata ("" when none), `names` the files. With `fit_faces`, the
// half those members were fitted on is loaded into it (all of it, whatever `limit`), for the
// ensemble's own temperature; it throws when no member was calibrated on a half of this split.
Dataset load_faces_for_ensemble_report(const TrainConfig& config, const std::string& split, int64_t limit,
                                       const std::vector<std::string>& calibration_jsons,
                                       const std::vector<std::string>& names, std::string* note,
                                       Dataset* fit_faces = nullptr);

// The ensemble's own temperature. Members err on different faces, so the mean of calibrated members
// is under-confident; one T on the log of the mean, softmax(log p / T) = p^(1/T) / sum, corrects
// that without changing any face's top class. Chosen as a model's is (choose_temperature: the NLL's
// T unless it worsens these faces' top-label ECE), on faces the ensemble is not reported on.
TemperatureChoice fit_ensemble_temperature(const std::vector<float>& probs, const std::vector<int>& labels,
                                           int classes);
// probs [n][classes] at temperature t: p^(1/t), renormalised per face (in double).
std::vector<float> probabilities_at_temperature(const std::vector<float>& probs, int classes, double t);

// "ensemble of 3 at each member's temperature, equal weights; calibration, 15 bins: ECE 0.0301 at
// T = 1 -> 0.0252, NLL 0.9012 -> 0.8990"
std::string ensemble_calibration_text(const EnsembleResult& e);

}  // namespace emotune
