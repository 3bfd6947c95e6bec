// base/softmax.h, the one softmax behind reported probabilities, against the three copies it
// replaced (predict's in layers/model.cpp, evaluate's in apps/train/evaluation.cpp, calibration's
// in apps/train/calibration.cpp), kept here verbatim as oracles: bit for bit, on random logits of
// several scales, with and without a temperature, and averaged over TTA views as their callers do.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "base/softmax.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;

namespace {

// layers/model.cpp before issue 24 (softmax_row): float.
std::vector<float> predict_softmax_before(const float* logits, int classes, double temperature) {
  std::vector<float> z(logits, logits + classes);
  if (temperature != 1.0)
    for (float& v : z) v = (float)(v / temperature);
  float mx = z[0];
  for (int k = 1; k < classes; ++k) mx = std::max(mx, z[k]);
  std::vector<float> p(classes);
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += p[k] = std::exp(z[k] - mx);
  for (float& v : p) v = (float)(v / sum);
  return p;
}

// apps/train/evaluation.cpp before issue 24: double exponentials, float sums over views.
void evaluate_softmax_before(const float* logits, int views, int num_classes, float* p) {
  for (int v = 0; v < views; ++v) {
    const float* z = logits + (size_t)v * num_classes;
    float mx = z[0];
    for (int c = 1; c < num_classes; ++c) mx = std::max(mx, z[c]);
    double sum = 0;
    for (int c = 0; c < num_classes; ++c) sum += std::exp((double)z[c] - mx);
    for (int c = 0; c < num_classes; ++c) p[c] += (float)(std::exp((double)z[c] - mx) / sum / views);
  }
}

// apps/train/calibration.cpp before issue 24 (softmax_at_temperature, one face): double throughout.
std::vector<float> calibration_softmax_before(const float* logits, int views, int classes, double temperature) {
  std::vector<double> p(classes, 0.0);
  for (int v = 0; v < views; ++v) {
    const float* z = logits + (size_t)v * classes;
    double mx = z[0] / temperature, sum = 0;
    for (int k = 1; k < classes; ++k) mx = std::max(mx, z[k] / temperature);
    for (int k = 0; k < classes; ++k) sum += std::exp(z[k] / temperature - mx);
    for (int k = 0; k < classes; ++k) p[k] += std::exp(z[k] / temperature - mx) / sum / views;
  }
  return std::vector<float>(p.begin(), p.end());
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("softmax: bit for bit the three softmaxes it replaced") {
  const int classes = 7, views = 10;
  int cases = 0;
  for (float scale : {0.01f, 1.0f, 8.0f, 60.0f}) {
    for (uint64_t seed = 1; seed <= 50; ++seed) {
      const auto z = random_vector((size_t)views * classes, seed * 31 + (uint64_t)scale, -scale, scale);
      for (double t : {1.0, 0.5, 1.37, 3.0}) {
        std::vector<float> got(classes);
        softmax_row(z.data(), classes, t, got.data());
        INFO("scale " << scale << " seed " << seed << " temperature " << t);
        CHECK(same_bits(got, predict_softmax_before(z.data(), classes, t)));

        for (int v : {1, views}) {
          std::vector<double> p(classes, 0.0), q(classes);
          for (int i = 0; i < v; ++i) {
            softmax_row(z.data() + (size_t)i * classes, classes, t, q.data());
            for (int k = 0; k < classes; ++k) p[k] += q[k] / v;
          }
          CHECK(same_bits(std::vector<float>(p.begin(), p.end()),
                          calibration_softmax_before(z.data(), v, classes, t)));
        }
        ++cases;
      }
      std::vector<float> mine(classes, 0.0f), before(classes, 0.0f);
      std::vector<double> q(classes);
      for (int v = 0; v < views; ++v) {
        softmax_row(z.data() + (size_t)v * classes, classes, 1.0, q.data());
        for (int c = 0; c < classes; ++c) mine[c] += (float)(q[c] / views);
      }
      evaluate_softmax_before(z.data(), views, classes, before.data());
      CHECK(same_bits(mine, before));
    }
  }
  CHECK(cases == 4 * 50 * 4);
}

TEST_CASE("softmax: a distribution, stable for large logits") {
  const std::vector<float> z = {1000.0f, 999.0f, -1000.0f};
  std::vector<float> p(3);
  softmax_row(z.data(), 3, 1.0, p.data());
  CHECK(std::isfinite(p[0]));
  CHECK(p[0] == doctest::Approx(1.0 / (1.0 + std::exp(-1.0))).epsilon(1e-6));
  CHECK(p[2] == 0.0f);
  CHECK(p[0] + p[1] + p[2] == doctest::Approx(1.0).epsilon(1e-6));
  // A temperature of 2 halves the gap.
  softmax_row(z.data(), 3, 2.0, p.data());
  CHECK(p[1] / p[0] == doctest::Approx(std::exp(-0.5)).epsilon(1e-5));
}
