// Smoothed mood of one tracked face: an exponential moving average of the class probabilities
// with a time constant in seconds, and a label with hysteresis. Pure arithmetic (no OpenCV), so
// the unit tests and the fuzz target run it on synthetic sequences.
//
// Smoothing: s <- s + a * (p - s) with a = 1 - exp(-dt / tau), dt the seconds since the previous
// observation. Because exp(-dt1/tau) * exp(-dt2/tau) = exp(-(dt1+dt2)/tau), n frames at 1/fps
// give the same weight to the past as one step of n/fps: a step from 0 to 1 reaches
// 1 - exp(-t/tau) (63.2% at t = tau) whatever the frame rate. tau = 0 turns smoothing off.
// The first observation is taken as it is (no ramp from zero).
//
// Label: the class shown only changes when another class leads the shown one by more than
// `hysteresis` in the smoothed probabilities, so two classes at nearly equal probability do not
// make the label flicker. docs/video.md shows raw vs smoothed probabilities on a clip.
#pragma once
#include <cstddef>
#include <vector>

namespace emotune {

struct SmoothingOptions {
  // Seconds. 0.5 s: long enough to hide the frame-to-frame noise of a 48x48 classifier (a face
  // crop moved by one pixel changes the top probability by several points), short enough that a
  // real change of expression shows within about a second.
  double time_constant_s = 0.5;
  // Lead (in probability) another class needs over the shown one before the label changes.
  double hysteresis = 0.10;
};

// Throws emotune::Error for a negative or non-finite time constant or a hysteresis outside [0, 1).
void validate_smoothing_options(const SmoothingOptions& options);

class MoodSmoother {
 public:
  MoodSmoother(size_t classes, SmoothingOptions options);

  // Adds the raw probabilities observed dt_s seconds after the previous observation (ignored for
  // the first one). Throws emotune::Error for a size mismatch, a negative or non-finite value or
  // a negative or non-finite dt_s. Returns the smoothed probabilities.
  const std::vector<double>& update(const std::vector<float>& raw, double dt_s);

  const std::vector<double>& smoothed() const { return smoothed_; }
  size_t label() const { return label_; }  // the class shown (hysteresis applied)
  bool empty() const { return !started_; }

 private:
  SmoothingOptions options_;
  std::vector<double> smoothed_;
  size_t label_ = 0;
  bool started_ = false;
};

}  // namespace emotune
