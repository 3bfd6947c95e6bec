// dropout CPU kernels: seeded Philox mask, binomial keep rate, inverted scaling, offsets that
// split a tensor, backward reusing the forward's mask.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/dropout.h"
#include "kernels/philox.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;

TEST_CASE("dropout: seeded mask, binomial keep rate, inverted scaling, backward reuses the mask") {
  const int64_t n = 1000000;
  const float p = 0.3f;
  const float scale = 1.0f / (1.0f - p);
  auto x = random_vector(n, 71, 0.5f, 1.5f);  // never zero: a dropped element is unambiguous
  std::vector<float> y(n), y2(n), y3(n);
  dropout_forward_cpu(n, x.data(), p, 1234, 0, y.data());
  dropout_forward_cpu(n, x.data(), p, 1234, 0, y2.data());
  dropout_forward_cpu(n, x.data(), p, 1235, 0, y3.data());

  EMOTUNE_CHECK_CLOSE(allclose(y2, y, 0, 0));  // same seed: bit-identical

  int64_t kept = 0, bad_values = 0, differs = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] != 0.0f) {
      ++kept;
      if (y[i] != x[i] * scale) ++bad_values;  // the same float expression: exact
    }
    differs += (y[i] != 0.0f) != (y3[i] != 0.0f);
  }
  CHECK(bad_values == 0);
  // kept ~ Binomial(n, 0.7): sd = sqrt(n * 0.7 * 0.3) = 458; 6 sd (false alarm ~2e-9).
  const double sd = std::sqrt(n * 0.7 * 0.3);
  CHECK(std::fabs((double)kept - 0.7 * n) < 6 * sd);
  // Two independent masks disagree on 2 * 0.7 * 0.3 = 42% of elements; 6 sd again.
  const double sd2 = std::sqrt(n * 0.42 * 0.58);
  CHECK(std::fabs((double)differs - 0.42 * n) < 6 * sd2);

  // The mask of element i is a function of (seed, offset + i): two halves with their offsets
  // reproduce the whole.
  std::vector<float> halves(n);
  dropout_forward_cpu(n / 2, x.data(), p, 1234, 0, halves.data());
  dropout_forward_cpu(n - n / 2, x.data() + n / 2, p, 1234, n / 2, halves.data() + n / 2);
  EMOTUNE_CHECK_CLOSE(allclose(halves, y, 0, 0));  // identical computation per element

  // Backward: dx = dy * scale where the forward kept, else 0.
  auto dy = random_vector(n, 72);
  std::vector<float> dx(n, NAN), dx_want(n);
  for (int64_t i = 0; i < n; ++i) dx_want[i] = y[i] != 0.0f ? dy[i] * scale : 0.0f;
  dropout_backward_cpu(n, dy.data(), p, 1234, 0, dx.data());
  EMOTUNE_CHECK_CLOSE(allclose(dx, dx_want, 0, 0));  // same mask, same product: exact

  // p = 0 is the identity (scale exactly 1).
  std::vector<float> id(n);
  dropout_forward_cpu(n, x.data(), 0.0f, 99, 7, id.data());
  EMOTUNE_CHECK_CLOSE(allclose(id, x, 0, 0));

  // The CPU and CUDA kernels share this rule; pin the first elements so a change to it is seen.
  for (int64_t i = 0; i < 64; ++i) CHECK((y[i] != 0.0f) == (philox_uniform(1234, (uint64_t)i) >= p));
}

TEST_CASE("dropout: the blocked Philox mask equals the scalar rule everywhere") {
  // The CPU kernel draws 16 counters at a time; every element must still be
  // philox_uniform(seed, offset + i) >= p, for lengths that are not multiples of 16, offsets that
  // are not either, and counters that cross 2^32 (the high word of the counter in use).
  const float p = 0.4f;
  const float scale = 1.0f / (1.0f - p);
  for (uint64_t offset : {uint64_t{0}, uint64_t{5}, (uint64_t{1} << 32) - 21}) {
    for (int64_t n : {int64_t{1}, int64_t{15}, int64_t{17}, int64_t{70001}}) {
      CAPTURE(offset);
      CAPTURE(n);
      auto x = random_vector(n, 73, 0.5f, 1.5f);
      std::vector<float> y(n, NAN);
      dropout_forward_cpu(n, x.data(), p, 0xABCDEF0123ull, offset, y.data());
      int64_t wrong = 0;
      for (int64_t i = 0; i < n; ++i) {
        const float want = philox_uniform(0xABCDEF0123ull, offset + (uint64_t)i) >= p ? x[i] * scale : 0.0f;
        wrong += y[i] != want;
      }
      CHECK(wrong == 0);
    }
  }
}
