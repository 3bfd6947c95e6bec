// softmax cross-entropy CPU kernel: hand values (class weights, label smoothing, soft targets),
// extreme logits, and a finite-difference gradient check of the reference in double.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/cross_entropy_ref.h"
#include "kernels/cross_entropy.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

TEST_CASE("cross entropy: 2-class hand values, class weights, label smoothing, soft targets") {
  const float ln3 = std::log(3.0f);
  CrossEntropyShape p{2, 2};
  // Both rows have logits (0, ln 3): softmax (1/4, 3/4).
  const std::vector<float> z = {0, ln3, 0, ln3};
  float loss = NAN;
  std::vector<float> dz(4, NAN);
  // The reference sums in double; the float results carry a few ulps of the float log/exp inputs.
  const double tol = 1e-6;

  SUBCASE("one-hot, no weights: mean of -log p") {
    const std::vector<float> t = {0, 1, 1, 0};  // row 0 is class 1, row 1 is class 0
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
    CHECK(std::fabs(loss - (std::log(4.0 / 3) + std::log(4.0)) / 2) < tol);
    // dz = (softmax - t) / N
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.125f, -0.125f, -0.375f, 0.375f}, tol, 0));
  }
  SUBCASE("class weights (3, 1): PyTorch's weighted mean") {
    const std::vector<float> t = {0, 1, 1, 0}, w = {3, 1};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), w.data(), 0.0f, &loss, dz.data());
    // (w1 * log(4/3) + w0 * log 4) / (w1 + w0)
    CHECK(std::fabs(loss - (1 * std::log(4.0 / 3) + 3 * std::log(4.0)) / 4) < tol);
    // row 0: 1 * (1/4 - 0, 3/4 - 1) / 4;  row 1: 3 * (1/4 - 1, 3/4 - 0) / 4
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.0625f, -0.0625f, -0.5625f, 0.5625f}, tol, 0));
  }
  SUBCASE("label smoothing 0.1: targets (0.05, 0.95)") {
    const std::vector<float> t = {0, 1, 0, 1};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.1f, &loss, dz.data());
    // Each row: -(0.05 log 1/4 + 0.95 log 3/4); the mean of two equal rows is one row.
    CHECK(std::fabs(loss - -(0.05 * std::log(0.25) + 0.95 * std::log(0.75))) < tol);
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.1f, -0.1f, 0.1f, -0.1f}, tol, 0));  // (1/4 - 0.05) / 2
  }
  SUBCASE("soft targets (FER+ votes)") {
    const std::vector<float> t = {0.2f, 0.8f, 0.5f, 0.5f};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
    const double l0 = -(0.2 * std::log(0.25) + 0.8 * std::log(0.75));
    const double l1 = -(0.5 * std::log(0.25) + 0.5 * std::log(0.75));
    CHECK(std::fabs(loss - (l0 + l1) / 2) < tol);
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.025f, -0.025f, -0.125f, 0.125f}, tol, 0));  // (p - t) / 2
  }
}

TEST_CASE("cross entropy with extreme logits stays finite and exact") {
  CrossEntropyShape p{2, 3};
  const std::vector<float> z = {1e4f, -1e4f, 0.0f, 1e4f, 1e4f, -1e4f};
  const std::vector<float> t = {0, 1, 0, 1, 0, 0};
  float loss = NAN;
  std::vector<float> dz(6, NAN);
  softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
  // Row 0: -log softmax_1 = 2e4 (exp(-1e4) and exp(-2e4) vanish next to 1); row 1: log 2.
  CHECK(std::isfinite(loss));
  CHECK(std::fabs(loss - (2e4 + std::log(2.0)) / 2) < 1e-2);  // 1e-2: the float ulp at 1e4 is 1e-3
  // dz = (softmax - t) / 2: row 0 (1, -1, 0) / 2, row 1 (-1/4, 1/4, 0)
  EMOTUNE_CHECK_CLOSE(allclose(dz, {0.5f, -0.5f, 0.0f, -0.25f, 0.25f, 0.0f}, 1e-7, 0));  // exp underflows to 0 exactly
}

// The loss is smooth in the logits: truncation ~h^2 |f'''| ~ 1e-12, rounding ~1e-16 / h = 1e-10;
// 1e-7 absolute and 1e-6 relative leaves room, and a missing weight or smoothing term is ~1e-2.
TEST_CASE("cross entropy gradient matches finite differences in double (weights, smoothing, soft targets)") {
  CrossEntropyShape p{5, 7};
  auto z = random_vector_double(35, 111, -4, 4);
  auto t = random_vector_double(35, 112, 0, 1);
  for (int i = 0; i < 5; ++i) {  // normalise each row into a distribution
    double s = 0;
    for (int c = 0; c < 7; ++c) s += t[i * 7 + c];
    for (int c = 0; c < 7; ++c) t[i * 7 + c] /= s;
  }
  auto w = random_vector_double(7, 113, 0.5, 2);
  std::vector<double> dz(35), scratch(35);
  double l = 0;
  auto loss = [&]() {
    softmax_cross_entropy_ref<double>(p, z.data(), t.data(), w.data(), 0.1, &l, scratch.data());
    return l;
  };
  softmax_cross_entropy_ref<double>(p, z.data(), t.data(), w.data(), 0.1, &l, dz.data());
  bool ok;
  std::string msg =
      testing::close_double(dz, testing::numeric_grad(z, loss, 1, 1e-6), 1e-7, 1e-6, &ok);  // see above
  CHECK_MESSAGE(ok, msg);

  // The float kernel against the double reference on the same (float-representable) inputs.
  std::vector<float> zf(z.begin(), z.end()), tf(t.begin(), t.end()), wf(w.begin(), w.end()), dzf(35);
  std::vector<double> zd(zf.begin(), zf.end()), td(tf.begin(), tf.end()), wd(wf.begin(), wf.end());
  float lf;
  softmax_cross_entropy_cpu(p, zf.data(), tf.data(), wf.data(), 0.1f, &lf, dzf.data());
  softmax_cross_entropy_ref<double>(p, zd.data(), td.data(), wd.data(), (double)0.1f, &l, dz.data());
  std::vector<float> dzd(dz.begin(), dz.end());
  CHECK(std::fabs(lf - l) <= 1e-6 * std::fabs(l));                  // one float rounding of the loss
  EMOTUNE_CHECK_CLOSE(allclose(dzf, dzd, 1e-8, 1e-6));              // one rounding of each gradient
}
