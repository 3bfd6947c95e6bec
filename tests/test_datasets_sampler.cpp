// Class balancing: loss weights, the weighted sampler's proportions and determinism, the
// shuffled epoch order.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "datasets/sampler.h"

using namespace emotune;

namespace {

// FER-2013 Training class counts: a realistic imbalance (7215 happy vs 436 disgust).
const std::vector<int64_t> kCounts = {3995, 436, 4097, 7215, 4830, 3171, 4965};

std::vector<uint8_t> labels_from_counts(const std::vector<int64_t>& counts) {
  std::vector<uint8_t> labels;
  // Interleave the classes so that index order says nothing about the class.
  std::vector<int64_t> left = counts;
  for (bool any = true; any;) {
    any = false;
    for (size_t c = 0; c < left.size(); ++c)
      if (left[c] > 0) labels.push_back((uint8_t)c), --left[c], any = true;
  }
  return labels;
}

}  // namespace

TEST_CASE("class weights: n / (C * count), mean weight 1, empty classes 0") {
  std::vector<float> w = class_weights({10, 30, 0, 60});
  // n = 100, C = 3 present classes.
  CHECK(w[0] == doctest::Approx(100.0 / 30).epsilon(1e-6));  // float rounding
  CHECK(w[1] == doctest::Approx(100.0 / 90).epsilon(1e-6));
  CHECK(w[2] == 0.0f);
  CHECK(w[3] == doctest::Approx(100.0 / 180).epsilon(1e-6));
  std::vector<float> f = class_weights(kCounts);
  double n = 0, mean = 0;
  for (size_t c = 0; c < kCounts.size(); ++c) n += kCounts[c], mean += kCounts[c] * f[c];
  CHECK(mean / n == doctest::Approx(1.0).epsilon(1e-6));  // the documented invariant, float weights
  CHECK(f[1] > f[3]);  // disgust weighs more than happy
}

TEST_CASE("weighted sampler: every class fills about 1/C of an epoch") {
  std::vector<uint8_t> labels = labels_from_counts(kCounts);
  WeightedSampler s(labels, 7);
  const size_t draws = 70000;
  std::vector<uint32_t> idx = s.draw(draws, 42, 3);
  REQUIRE(idx.size() == draws);
  std::vector<double> per_class(7, 0);
  size_t out_of_range = 0;
  for (uint32_t i : idx) {
    if (i >= labels.size()) { ++out_of_range; continue; }
    per_class[labels[i]] += 1;
  }
  REQUIRE(out_of_range == 0);
  // Binomial(70000, 1/7): sd = sqrt(n p (1-p)) ~ 92.6; 5 sd bounds fail with p < 1e-6 per class.
  const double expect = draws / 7.0, sd = std::sqrt(draws * (1.0 / 7) * (6.0 / 7));
  for (int c = 0; c < 7; ++c) {
    CAPTURE(c);
    CHECK(std::fabs(per_class[c] - expect) < 5 * sd);
  }
  // Within the rare class, members are drawn uniformly: each of the 436 disgust faces is expected
  // 10000/436 ~ 22.9 times; none may be missing entirely (P(miss) ~ e^-22.9 per face).
  std::vector<int> hits(labels.size(), 0);
  for (uint32_t i : idx) ++hits[i];
  int missing = 0;
  for (size_t i = 0; i < labels.size(); ++i) missing += labels[i] == 1 && hits[i] == 0;
  CHECK(missing == 0);
  CHECK(s.probability(0) == doctest::Approx(1.0 / (7 * 3995.0)));
}

TEST_CASE("weighted sampler: deterministic per (seed, epoch), different across them") {
  std::vector<uint8_t> labels = labels_from_counts({50, 5, 20});
  WeightedSampler s(labels, 3);
  CHECK(s.draw(500, 7, 1) == s.draw(500, 7, 1));
  CHECK(s.draw(500, 7, 1) != s.draw(500, 7, 2));
  CHECK(s.draw(500, 7, 1) != s.draw(500, 8, 1));
  // A prefix of a longer draw is the shorter draw: draw k depends on k only.
  std::vector<uint32_t> longer = s.draw(800, 7, 1), shorter = s.draw(500, 7, 1);
  CHECK(std::equal(shorter.begin(), shorter.end(), longer.begin()));
  // An empty class is never drawn and does not dilute the others.
  WeightedSampler gap(std::vector<uint8_t>{0, 0, 2, 2, 2, 2}, 3);
  std::vector<uint32_t> g = gap.draw(2000, 1, 0);
  int zeros = 0;
  for (uint32_t i : g) zeros += i < 2;
  // Binomial(2000, 1/2): sd ~ 22.4, 5 sd.
  CHECK(std::abs(zeros - 1000) < 5 * 22.4);
  CHECK_THROWS_AS(WeightedSampler(std::vector<uint8_t>{}, 7), Error);
  CHECK_THROWS_AS(WeightedSampler(std::vector<uint8_t>{0, 9}, 7), Error);
}

TEST_CASE("epoch order: a permutation, seeded, identity without shuffle") {
  std::vector<uint32_t> a = epoch_order(1000, true, 5, 0);
  std::vector<uint32_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  bool permutation = true;
  for (uint32_t i = 0; i < 1000; ++i) permutation &= sorted[i] == i;
  CHECK(permutation);
  CHECK(a == epoch_order(1000, true, 5, 0));
  CHECK(a != epoch_order(1000, true, 5, 1));
  CHECK(a != epoch_order(1000, true, 6, 0));
  int fixed = 0;
  for (uint32_t i = 0; i < 1000; ++i) fixed += a[i] == i;
  CHECK(fixed < 10);  // a random permutation has 1 fixed point on average; P(>= 10) ~ 1e-7
  std::vector<uint32_t> plain = epoch_order(5, false, 5, 3);
  CHECK(plain == std::vector<uint32_t>{0, 1, 2, 3, 4});
  CHECK(balance_from_name("sampler") == Balance::sampler);
  CHECK(balance_from_name("loss-weights") == Balance::loss_weights);
  CHECK_THROWS_AS(balance_from_name("smote"), Error);
}
