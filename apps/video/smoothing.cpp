#include "apps/video/smoothing.h"

#include <cmath>
#include <string>

#include "base/error.h"

namespace emotune {

void validate_smoothing_options(const SmoothingOptions& o) {
  if (!(o.time_constant_s >= 0) || !std::isfinite(o.time_constant_s))
    throw Error("--smooth must be a time constant in seconds >= 0, got " +
                std::to_string(o.time_constant_s));
  if (!(o.hysteresis >= 0 && o.hysteresis < 1))
    throw Error("--hysteresis must be in [0, 1), got " + std::to_string(o.hysteresis));
}

MoodSmoother::MoodSmoother(size_t classes, SmoothingOptions options) : options_(options) {
  validate_smoothing_options(options);
  if (classes == 0) throw Error("MoodSmoother: zero classes");
  smoothed_.assign(classes, 0.0);
}

const std::vector<double>& MoodSmoother::update(const std::vector<float>& raw, double dt_s) {
  if (raw.size() != smoothed_.size())
    throw Error("MoodSmoother: " + std::to_string(raw.size()) + " probabilities for " +
                std::to_string(smoothed_.size()) + " classes");
  for (float p : raw)
    if (!(p >= 0) || !std::isfinite(p))
      throw Error("MoodSmoother: probability " + std::to_string(p) + " is negative or not finite");
  if (!(dt_s >= 0) || !std::isfinite(dt_s))
    throw Error("MoodSmoother: time step " + std::to_string(dt_s) + " s is negative or not finite");
  if (!started_ || options_.time_constant_s == 0) {
    for (size_t i = 0; i < raw.size(); ++i) smoothed_[i] = raw[i];
  } else {
    const double a = 1.0 - std::exp(-dt_s / options_.time_constant_s);
    for (size_t i = 0; i < raw.size(); ++i) smoothed_[i] += a * (raw[i] - smoothed_[i]);
  }
  size_t best = 0;
  for (size_t i = 1; i < smoothed_.size(); ++i)
    if (smoothed_[i] > smoothed_[best]) best = i;
  if (!started_ || smoothed_[best] > smoothed_[label_] + options_.hysteresis) label_ = best;
  started_ = true;
  return smoothed_;
}

}  // namespace emotune
