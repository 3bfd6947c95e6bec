#include "apps/train/ensemble.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/error.h"

namespace emotune {

EnsembleResult combine_ensemble(const std::vector<EnsembleMember>& members, int classes) {
  if (members.empty()) throw Error("an ensemble needs at least one model");
  const EvalResult& first = members[0].result;
  const size_t n = first.labels.size();
  EnsembleResult e;
  e.labels = first.labels;
  e.probs.assign(n * classes, 0.0f);
  e.probs_at_1.assign(n * classes, 0.0f);
  std::vector<double> sum(n * classes, 0.0), sum_at_1(n * classes, 0.0);
  for (const EnsembleMember& m : members) {
    const EvalResult& r = m.result;
    if (r.labels != first.labels)
      throw Error(m.name + ": evaluated on other faces or labels than " + members[0].name +
                  " (an ensemble averages the same faces)");
    if (r.logits.size() != n * (size_t)r.views * classes)
      throw Error(m.name + ": " + std::to_string(r.logits.size()) + " logits for " + std::to_string(n) + " faces of " +
                  std::to_string(r.views) + " views and " + std::to_string(classes) + " classes");
    const std::vector<float> p = softmax_at_temperature(r.logits, r.views, classes, m.temperature);
    const std::vector<float> p1 = softmax_at_temperature(r.logits, r.views, classes, 1.0);
    for (size_t i = 0; i < p.size(); ++i) {
      sum[i] += p[i];
      sum_at_1[i] += p1[i];
    }
    e.member_metrics.push_back(compute_metrics(p, r.labels, classes));
    e.member_metrics.back().loss = calibration_stats(p, r.labels, classes).nll;
  }
  for (size_t i = 0; i < sum.size(); ++i) {
    e.probs[i] = (float)(sum[i] / members.size());
    e.probs_at_1[i] = (float)(sum_at_1[i] / members.size());
  }
  e.at_1 = calibration_stats(e.probs_at_1, e.labels, classes);
  e.calibrated = calibration_stats(e.probs, e.labels, classes);
  e.metrics = compute_metrics(e.probs, e.labels, classes);
  e.metrics.loss = e.calibrated.nll;
  return e;
}

Dataset load_faces_for_ensemble_report(const TrainConfig& config, const std::string& split, int64_t limit,
                                       const std::vector<std::string>& calibration_jsons,
                                       const std::vector<std::string>& names, std::string* note,
                                       Dataset* fit_faces) {
  // The member whose record decides the faces: the first fitted on a half of this split, else the
  // first whose record names this split at all (a held-out slice: the faces stay whole, with a note).
  std::vector<CalibrationRecord> recs(calibration_jsons.size());
  int half = -1, named = -1;
  for (size_t i = 0; i < calibration_jsons.size(); ++i) {
    if (calibration_jsons[i].empty()) continue;
    recs[i] = CalibrationRecord::from_json(calibration_jsons[i], names[i]);
    if (named < 0 && recs[i].names_split(split)) named = (int)i;
    if (!recs[i].fitted_on_half_of(split, config.labels)) continue;
    if (half < 0) {
      half = (int)i;
    } else if (!recs[i].same_halves(recs[half])) {
      throw Error(names[i] + " and " + names[half] + " fitted their temperatures on different halves of " + split +
                  ": no face of it is unseen by both; evaluate the ensemble on another split, or re-calibrate one "
                  "of them (emotune calibrate) on the halves of the other");
    }
  }
  if (fit_faces && half < 0)
    throw Error("the ensemble's own temperature is fitted on the half of " + split +
                " that a member's temperature was fitted on, and no member was calibrated on a half of " + split);
  const int chosen = half >= 0 ? half : named;
  Dataset d = load_faces_for_report(config, split, limit, chosen < 0 ? "" : calibration_jsons[chosen], note, fit_faces);
  if (!note->empty()) *note = names[chosen] + ": " + *note;
  return d;
}

std::vector<float> probabilities_at_temperature(const std::vector<float>& probs, int classes, double t) {
  std::vector<float> out(probs.size());
  std::vector<double> q(classes);
  for (size_t i = 0; i + classes <= probs.size(); i += classes) {
    double sum = 0;
    for (int k = 0; k < classes; ++k) sum += q[k] = std::pow(std::max(1e-30, (double)probs[i + k]), 1.0 / t);
    for (int k = 0; k < classes; ++k) out[i + k] = (float)(q[k] / sum);
  }
  return out;
}

TemperatureChoice fit_ensemble_temperature(const std::vector<float>& probs, const std::vector<int>& labels,
                                           int classes) {
  // log p as the logits: softmax(log p / T) is p^(1/T) renormalised. Floored at 1e-30 so that a
  // probability rounded to 0 in float stays finite (it then stays negligible at any T in range).
  std::vector<float> logits(probs.size());
  for (size_t i = 0; i < probs.size(); ++i) logits[i] = (float)std::log(std::max(1e-30, (double)probs[i]));
  return choose_temperature(logits, labels, classes);
}

std::string ensemble_calibration_text(const EnsembleResult& e) {
  char s[256];
  std::snprintf(s, sizeof s,
                "calibration, %d bins: ECE %.4f, NLL %.4f with each member's temperature (%.4f, %.4f with all at "
                "T = 1)",
                kCalibrationBins, e.calibrated.ece, e.calibrated.nll, e.at_1.ece, e.at_1.nll);
  return s;
}

}  // namespace emotune
