// Calibrated probabilities by temperature scaling (Guo et al., "On Calibration of Modern Neural
// Networks", ICML 2017): one scalar T > 0 divides the logits before the softmax. It never changes
// which class wins, only how sure the model says it is. T is fitted by minimising the negative
// log-likelihood on faces that are then not used to report the calibration: a seeded, stratified
// half of one split (the validation split at the end of `emotune train`, or the split given to
// `emotune calibrate`); the expected calibration error (ECE) and NLL are reported on the other
// half. The NLL's T is applied only when it does not make the fit half's top-label ECE worse
// (choose_temperature). docs/calibration.md says what the numbers mean.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "apps/train/config.h"
#include "apps/train/evaluation.h"
#include "datasets/dataset.h"
#include "layers/model.h"

namespace emotune {

inline constexpr int kCalibrationBins = 15;  // equal-width confidence bins, as Guo et al.
inline constexpr double kMinTemperature = 0.05, kMaxTemperature = 20;

// T as model files store it ("%.6g").
std::string temperature_string(double temperature);

// softmax(z / T) of every view, averaged over the `views` views of each face (as evaluate averages
// test-time augmentation): [n][classes] from logits [n][views][classes]. Computed in double.
std::vector<float> softmax_at_temperature(const std::vector<float>& logits, int views, int classes,
                                          double temperature);

// Mean of -log softmax(z / T)[label] over n faces of one view each, in double (log-sum-exp).
double mean_nll_at_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes,
                               double temperature);

// The T in [kMinTemperature, kMaxTemperature] that minimises mean_nll_at_temperature. The NLL is
// convex in 1/T, hence unimodal in log T: a golden-section search on log T down to an interval of
// 1e-10, deterministic. Throws when there are no faces.
double fit_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes);

// The temperature a calibration applies, decided on the fit faces alone. The NLL's optimum
// (fit_temperature) makes all seven probabilities as right as one T can, but what a user reads, and
// what the ECE measures, is the top one; for a network already calibrated there (label smoothing
// does that) the NLL's T can make it worse. So the NLL's T is applied only when the fit faces'
// top-label ECE at it is no worse than at T = 1; otherwise T stays 1 (declined). With `always`,
// the NLL's T is applied regardless (`emotune calibrate --keep-worse-ece`).
struct TemperatureChoice {
  double temperature = 1;  // the one applied (stored to 6 significant digits)
  double nll_temperature = 1;  // the NLL's optimum (stored to 6 significant digits)
  double fit_ece_at_1 = 0, fit_ece_at_nll = 0;  // on the fit faces
  bool declined() const { return temperature != nll_temperature; }
};
TemperatureChoice choose_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes,
                                     bool always = false);

// Top-label reliability: bin b of `bins` holds the faces whose largest probability (the first one
// on ties, as the predicted class) lies in (b/bins, (b+1)/bins]; confidence and accuracy are the
// means over the bin's faces (0 in an empty bin).
struct ConfidenceBin {
  int64_t count = 0;
  double confidence = 0, accuracy = 0;
};

struct CalibrationStats {
  int64_t n = 0;
  double ece = 0;       // sum over bins of count/n * |accuracy - confidence|
  double nll = 0;       // mean -log max(p[label], 1e-12)
  double accuracy = 0;  // of the top-label prediction
  std::vector<ConfidenceBin> bins;
};

// probs: n rows of `classes` probabilities; labels: n true classes.
CalibrationStats calibration_stats(const std::vector<float>& probs, const std::vector<int>& labels, int classes,
                                   int bins = kCalibrationBins);
double expected_calibration_error(const std::vector<float>& probs, const std::vector<int>& labels, int classes,
                                  int bins = kCalibrationBins);

// Two disjoint halves of the indices 0..n-1 of `labels`, stratified: each class's indices are
// shuffled (datasets/sampler.h epoch_order, keyed by seed and class: the same on every machine) and
// split in two; a class with an odd count gives its extra face to the halves in turn, so the sizes
// differ by at most one. Each half is sorted (file order).
struct SplitHalves {
  std::vector<size_t> half[2];
};
SplitHalves stratified_halves(const std::vector<uint8_t>& labels, uint64_t seed);

// What a calibration did, stored as the model's metadata "calibration" (JSON).
struct CalibrationRecord {
  // The T applied and its evidence. A record from before the rule (2026-12-07) has no evidence: it
  // applied the NLL's T, so it reads back with nll_temperature = temperature, not declined.
  TemperatureChoice choice;
  std::string split, labels = "fer2013", data;  // data: the file name the faces came from
  uint64_t seed = 1;                              // the halves' seed (and the --limit subset's)
  int64_t limit = 0;                              // the split's seeded subset (0: all of it)
  int fit_half = 0;                               // reported on half 1 - fit_half
  double holdout = 0;  // > 0: the faces were the run's held-out fraction of `split` (apps/train/holdout.h)
  int64_t n_fit = 0, n_report = 0;
  CalibrationStats before, after;  // on the report half, at T = 1 and at `temperature`

  // The temperature was fitted on a half of `split` (these labels), not on a held-out slice: only
  // the other half of that split is unseen by it.
  bool fitted_on_half_of(const std::string& split, const std::string& labels) const;
  bool names_split(const std::string& split) const;  // `split` in any accepted spelling
  // The same halves of the same faces as `o` (same split, labels, seed, subset and fit half).
  bool same_halves(const CalibrationRecord& o) const;

  std::string to_json() const;
  // Throws emotune::Error naming `where` and the field.
  static CalibrationRecord from_json(const std::string& text, const std::string& where);
};

struct CalibrationSetup {
  std::string split = "PublicTest", labels = "fer2013", data;
  uint64_t seed = 1;
  int64_t limit = 0;  // the faces were loaded with this seeded limit (recorded, for evaluate)
  int fit_half = 0;
  bool always = false;  // apply the NLL's T even where it worsens the fit half's ECE
  double holdout = 0;  // > 0: `faces` are this held-out fraction of the split, not all of it
  EvalOptions eval;  // device and batch size; tta is ignored (none)
};

// Chooses the temperature of `model` on half setup.fit_half of `faces` (the whole split named in
// setup; choose_temperature) and measures ECE and NLL before and after on the other half. T is
// rounded to 6 significant digits first, so the numbers are those of the T written into the file.
CalibrationRecord calibrate_model(const LoadedModel& model, const Dataset& faces, const CalibrationSetup& setup);

// Copies the model file `in` to `out` (atomically; same tensors, same dtype) with the metadata
// "temperature" and "calibration" of `r`. `out` may be `in`.
void write_calibrated_model(const std::string& in, const std::string& out, const CalibrationRecord& r);

// "temperature 1.43, fitted on half 0 of PublicTest (seed 1, 1794 faces); other half (1795
// faces), 15 bins: ECE 0.0712 -> 0.0213, NLL 1.0512 -> 1.0134"
std::string calibration_summary(const CalibrationRecord& r);

// The faces `emotune evaluate` reports on. When the model's temperature was fitted on a half of
// this split with these labels (its `calibration` JSON), that split is loaded as the calibration
// loaded it and only the other half is kept, with `note` saying so (a temperature fitted on a
// held-out slice of the training split leaves every other split whole; evaluated on the training
// split itself, the note says that it includes those faces); `limit` then takes a seeded
// subset of that half. Otherwise load_labelled_split(config, split, limit), note empty. With
// `fit_half`, the half the temperature was fitted on goes there (all of it, whatever `limit`) from
// the same load; it is left empty when the faces are not a report half.
Dataset load_faces_for_report(TrainConfig config, const std::string& split, int64_t limit,
                              const std::string& calibration_json, std::string* note, Dataset* fit_half = nullptr);

// Calibration of one evaluated set at T = 1 and at `temperature`, from its logits. `calibrated`:
// the model carries a calibration record, so that T = 1 is told apart as declined, not unfitted.
struct CalibrationComparison {
  double temperature = 1;
  bool calibrated = false;
  CalibrationStats before, after;
  bool declined() const { return calibrated && temperature == 1.0; }
};
CalibrationComparison compare_calibration(const EvalResult& r, int classes, double temperature,
                                          bool calibrated = false);
// "calibration, 15 bins: ECE 0.0712 at T = 1 -> 0.0213 at the model's T = 1.43; NLL ..."
std::string comparison_text(const CalibrationComparison& c);
// {"bins": 15, "temperature": T, "before": {"ece", "nll", "accuracy"}, "after": {...}}
std::string comparison_json(const CalibrationComparison& c);

}  // namespace emotune
