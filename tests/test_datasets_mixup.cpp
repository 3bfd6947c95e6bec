// Mixup (datasets/mixup.h): lam follows Beta(alpha, alpha), the pairing is a permutation, both
// fixed by (seed, epoch, batch); a mixed batch is exactly lam x_i + (1 - lam) x_p(i), targets too.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <vector>

#include "datasets/mixup.h"

using namespace emotune;

TEST_CASE("mixup_lambda: Beta(alpha, alpha)'s mean and variance, and the same draw for the same batch") {
  for (double alpha : {0.2, 1.0, 2.0}) {
    const int n = 20000;
    double sum = 0, sq = 0;
    for (int i = 0; i < n; ++i) {
      const double l = mixup_lambda(alpha, 7, i / 100, i % 100);
      REQUIRE((l >= 0 && l <= 1));
      sum += l;
      sq += l * l;
    }
    const double mean = sum / n, var = sq / n - mean * mean;
    const double want_var = 1 / (4 * (2 * alpha + 1));  // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1))
    // Standard error of the mean: sqrt(want_var / n) <= 0.003 here, so 0.015 is 5 of them; the
    // sample variance's relative standard error is about sqrt(2 / n) * (kurtosis factor) < 2%:
    // 10% is 5 of them.
    INFO("alpha ", alpha, " mean ", mean, " var ", var, " want ", want_var);
    CHECK(std::fabs(mean - 0.5) < 0.015);
    CHECK(std::fabs(var / want_var - 1) < 0.10);
  }
  CHECK(mixup_lambda(0.4, 3, 2, 9) == mixup_lambda(0.4, 3, 2, 9));
  CHECK(mixup_lambda(0.4, 3, 2, 9) != mixup_lambda(0.4, 3, 2, 10));
  CHECK(mixup_lambda(0.4, 3, 2, 9) != mixup_lambda(0.4, 4, 2, 9));
  CHECK_THROWS(mixup_lambda(0, 1, 0, 0));
}

TEST_CASE("mixup_permutation: a permutation, seeded") {
  std::vector<int32_t> a(16), b(16), c(16);
  mixup_permutation(16, 5, 1, 2, a.data());
  mixup_permutation(16, 5, 1, 2, b.data());
  mixup_permutation(16, 5, 1, 3, c.data());
  CHECK(a == b);
  CHECK(a != c);
  std::vector<int32_t> sorted = a;
  std::sort(sorted.begin(), sorted.end());
  std::vector<int32_t> id(16);
  std::iota(id.begin(), id.end(), 0);
  CHECK(sorted == id);
}

TEST_CASE("mixup_batch: each image and target is lam * its own + (1 - lam) * its partner's") {
  const int n = 6, side = 4, classes = 3;
  std::vector<float> images(n * side * side), targets(n * classes, 0.0f);
  std::vector<int32_t> labels(n), samples(n);
  for (size_t i = 0; i < images.size(); ++i) images[i] = (float)((i * 37) % 101) / 101.0f;
  for (int i = 0; i < n; ++i) targets[i * classes + i % classes] = 1.0f, labels[i] = i % classes;
  Batch b;
  b.epoch = 4;
  b.index = 2;
  b.size = n;
  b.side = side;
  b.num_classes = classes;
  b.images = images.data();
  b.targets = targets.data();
  b.labels = labels.data();
  b.samples = samples.data();
  const std::vector<float> x0 = images, t0 = targets;
  mixup_batch(b, 0.0, 9);  // off
  CHECK(images == x0);
  mixup_batch(b, 0.5, 9);
  const float lam = (float)mixup_lambda(0.5, 9, 4, 2);
  std::vector<int32_t> p(n);
  mixup_permutation(n, 9, 4, 2, p.data());
  const int px = side * side;
  for (int i = 0; i < n; ++i) {
    for (int k = 0; k < px; ++k)
      CHECK(images[i * px + k] == lam * x0[i * px + k] + (1 - lam) * x0[p[i] * px + k]);
    float sum = 0;
    for (int k = 0; k < classes; ++k) {
      CHECK(targets[i * classes + k] == lam * t0[i * classes + k] + (1 - lam) * t0[p[i] * classes + k]);
      sum += targets[i * classes + k];
    }
    CHECK(std::fabs(sum - 1) < 1e-6);  // still a distribution (two roundings)
  }
  CHECK(images != x0);
}
