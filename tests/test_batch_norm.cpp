// batch_norm CPU kernels: training statistics by hand, eval on the running statistics, the threaded
// float kernels against the double reference on the batch_norm table, and a finite-difference
// gradient check in double.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/elementwise.h"
#include "kernels/cpu/batch_norm_ref.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

TEST_CASE("batch_norm training statistics of a tiny batch, by hand") {
  // x [N=2, C=2, HW=2]: channel 0 holds {1, 2, 3, 4}, channel 1 holds {10, 20, 30, 40}.
  BatchNormShape p{2, 2, 2};
  const std::vector<float> x = {1, 2, 10, 20, 3, 4, 30, 40};
  const std::vector<float> gamma = {2.0f, 0.5f}, beta = {0.25f, -1.0f};
  const float eps = 1e-5f, momentum = 0.1f;
  std::vector<float> rm = {0.0f, 1.0f}, rv = {1.0f, 2.0f};
  std::vector<float> y(8), save_mean(2), save_invstd(2);
  batch_norm_forward_train_cpu(p, x.data(), gamma.data(), beta.data(), eps, momentum, rm.data(), rv.data(),
                               y.data(), save_mean.data(), save_invstd.data());
  // Channel 0: mean 2.5, biased var (2.25 + 0.25 + 0.25 + 2.25) / 4 = 1.25, unbiased 5 / 3.
  // Channel 1: mean 25,  biased var (225 + 25 + 25 + 225) / 4 = 125,     unbiased 500 / 3.
  const double mean[2] = {2.5, 25}, var[2] = {1.25, 125}, unbiased[2] = {5.0 / 3, 500.0 / 3};
  const double inv[2] = {1 / std::sqrt(var[0] + eps), 1 / std::sqrt(var[1] + eps)};
  std::vector<float> y_want(8);
  for (int n = 0; n < 2; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 2; ++i) {
        const int k = (n * 2 + c) * 2 + i;
        y_want[k] = (float)(gamma[c] * (x[k] - mean[c]) * inv[c] + beta[c]);
      }
  // The kernel computes in double and rounds once: a few float ulps of values up to ~3.
  EMOTUNE_CHECK_CLOSE(allclose(y, y_want, 1e-6, 1e-6));
  EMOTUNE_CHECK_CLOSE(allclose(save_mean, {2.5f, 25.0f}, 0, 0));  // exact sums of small integers
  EMOTUNE_CHECK_CLOSE(allclose(save_invstd, {(float)inv[0], (float)inv[1]}, 0, 1e-6));  // one float rounding
  // running = 0.9 * running + 0.1 * batch, with the unbiased variance (PyTorch).
  const std::vector<float> rm_want = {(float)(0.9 * 0 + 0.1 * mean[0]), (float)(0.9 * 1 + 0.1 * mean[1])};
  const std::vector<float> rv_want = {(float)(0.9 * 1 + 0.1 * unbiased[0]), (float)(0.9 * 2 + 0.1 * unbiased[1])};
  // momentum is the float 0.1f, not 0.1: relative difference 1.5e-9 per term, plus float rounding.
  EMOTUNE_CHECK_CLOSE(allclose(rm, rm_want, 0, 1e-6));
  EMOTUNE_CHECK_CLOSE(allclose(rv, rv_want, 0, 1e-6));
  // Guard against the biased variance sneaking in: it would give 0.9 + 0.125 = 1.025 here.
  CHECK(std::fabs(rv[0] - 1.025f) > 0.01f);
}

TEST_CASE("batch_norm eval uses the running statistics and touches nothing else") {
  BatchNormShape p{3, 2, 2};
  const auto x = random_vector(p.size(), 41, -3, 3);
  const std::vector<float> gamma = {1.5f, -0.5f}, beta = {0.1f, 0.2f};
  const std::vector<float> rm = {0.3f, -0.7f}, rv = {4.0f, 0.25f};
  const float eps = 1e-3f;
  std::vector<float> y(p.size());
  batch_norm_forward_eval_cpu(p, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), eps, y.data());
  std::vector<float> want(p.size());
  for (int n = 0; n < 3; ++n)
    for (int c = 0; c < 2; ++c)
      for (int i = 0; i < 2; ++i) {
        const int k = (n * 2 + c) * 2 + i;
        want[k] = (float)(gamma[c] * ((double)x[k] - rm[c]) / std::sqrt((double)rv[c] + eps) + beta[c]);
      }
  // float arithmetic (scale and shift folded) vs double: a few ulps of values up to ~3.
  EMOTUNE_CHECK_CLOSE(allclose(y, want, 2e-6, 2e-6));
}

TEST_CASE("batch_norm threaded float kernels match the double reference on the table") {
  for (const auto& bc : testing::batch_norm_cases()) {
    BatchNormShape p = bc.shape;
    p.n = 4;
    CAPTURE(bc.name);
    auto x = random_vector(p.size(), 51, -2, 3), dy = random_vector(p.size(), 52);
    auto gamma = random_vector(p.c, 53, 0.5, 1.5), beta = random_vector(p.c, 54);
    std::vector<float> rm(p.c, 0.0f), rv(p.c, 1.0f), y(p.size()), sm(p.c), si(p.c);
    batch_norm_forward_train_cpu(p, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, rm.data(), rv.data(),
                                 y.data(), sm.data(), si.data());
    std::vector<float> dx(p.size(), NAN), dg(p.c, NAN), db(p.c, NAN);
    batch_norm_backward_cpu(p, x.data(), dy.data(), gamma.data(), sm.data(), si.data(), dx.data(), dg.data(),
                            db.data());

    auto d = [](const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); };
    auto xd = d(x), dyd = d(dy), gd = d(gamma), bd = d(beta);
    std::vector<double> rmd(p.c, 0.0), rvd(p.c, 1.0), yd(p.size()), smd(p.c), sid(p.c);
    batch_norm_forward_train_ref<double>(p, xd.data(), gd.data(), bd.data(), (double)1e-5f, (double)0.1f,
                                         rmd.data(), rvd.data(), yd.data(), smd.data(), sid.data(), 0, p.c);
    std::vector<double> dxd(p.size()), dgd(p.c), dbd(p.c);
    batch_norm_backward_ref<double>(p, xd.data(), dyd.data(), gd.data(), smd.data(), sid.data(), dxd.data(),
                                    dgd.data(), dbd.data(), 0, p.c);
    auto f = [](const std::vector<double>& v) { return std::vector<float>(v.begin(), v.end()); };
    // Forward: double inside, one rounding to float (and the statistics are in double too).
    EMOTUNE_CHECK_CLOSE(allclose(y, f(yd), 1e-6, 1e-6));
    EMOTUNE_CHECK_CLOSE(allclose(rm, f(rmd), 1e-7, 1e-6));  // one float rounding
    EMOTUNE_CHECK_CLOSE(allclose(rv, f(rvd), 1e-7, 1e-6));  // one float rounding
    // Backward reads the float-rounded save_mean / save_invstd (relative error 6e-8) and its
    // correction terms cancel: dx is a difference of sums of size up to M = N*HW; 1e-5 absolute
    // on values of order 0.1 to 1 covers that and is still far below any formula error.
    EMOTUNE_CHECK_CLOSE(allclose(dx, f(dxd), 1e-5, 1e-5));
    // dgamma, dbeta: sums of M terms, accumulated in double in both: float input rounding only.
    EMOTUNE_CHECK_CLOSE(allclose(dg, f(dgd), 1e-5, 1e-5));
    EMOTUNE_CHECK_CLOSE(allclose(db, f(dbd), 1e-5, 1e-5));
  }
}

// The fused kernels promise the pair's floats exactly (kernels/batch_norm.h): the same double
// arithmetic rounded to the same float, relu's and relu_backward's selections on it. Compared
// bit for bit (memcmp) on every table shape at batch 3 (planes of 2116, 121, ... values: the
// partial sums' tails run), with two channels made to hit the edges: gamma = beta = 0, where
// batch_norm's output is exactly 0 (relu must pass 0 and its gradient must be cut), and a NaN in
// x, which makes its channel NaN (relu passes it, its gradient is cut).
TEST_CASE("batch_norm_relu kernels give the floats of batch_norm then relu, bit for bit") {
  auto same_bits = [](const std::vector<float>& a, const std::vector<float>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
  };
  for (const auto& bc : testing::batch_norm_cases()) {
    BatchNormShape p = bc.shape;
    p.n = 3;
    CAPTURE(bc.name);
    auto x = random_vector(p.size(), 71, -2, 3), dy = random_vector(p.size(), 72);
    auto gamma = random_vector(p.c, 73, -1.5, 1.5), beta = random_vector(p.c, 74);
    gamma[0] = beta[0] = 0.0f;
    if (p.c > 1) x[(size_t)p.hw] = NAN;  // channel 1 of image 0
    // The pair.
    std::vector<float> rm(p.c, 0.5f), rv(p.c, 2.0f), z(p.size()), y(p.size()), sm(p.c), si(p.c);
    batch_norm_forward_train_cpu(p, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, rm.data(), rv.data(),
                                 z.data(), sm.data(), si.data());
    relu_forward_cpu(p.size(), z.data(), y.data());
    std::vector<float> dz(p.size()), dx(p.size()), dg(p.c), db(p.c);
    relu_backward_cpu(p.size(), z.data(), dy.data(), dz.data());
    batch_norm_backward_cpu(p, x.data(), dz.data(), gamma.data(), sm.data(), si.data(), dx.data(), dg.data(),
                            db.data());
    // The fused kernels.
    std::vector<float> frm(p.c, 0.5f), frv(p.c, 2.0f), fy(p.size(), -7.0f), fsm(p.c), fsi(p.c);
    batch_norm_relu_forward_train_cpu(p, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, frm.data(), frv.data(),
                                      fy.data(), fsm.data(), fsi.data());
    std::vector<float> fdx(p.size(), -7.0f), fdg(p.c, -7.0f), fdb(p.c, -7.0f);
    batch_norm_relu_backward_cpu(p, x.data(), fy.data(), dy.data(), gamma.data(), fsm.data(), fsi.data(), fdx.data(),
                                 fdg.data(), fdb.data());
    CHECK(same_bits(fy, y));
    CHECK(same_bits(frm, rm));
    CHECK(same_bits(frv, rv));
    CHECK(same_bits(fsm, sm));
    CHECK(same_bits(fsi, si));
    CHECK(same_bits(fdx, dx));
    CHECK(same_bits(fdg, dg));
    CHECK(same_bits(fdb, db));
    // The edges happened: channel 0 is all zeros with no gradient through it to beta; channel 1 NaN.
    CHECK(fy[0] == 0.0f);
    CHECK(fdb[0] == 0.0f);
    if (p.c > 1) CHECK(std::isnan(fy[(size_t)p.hw]));
    int64_t cut = 0;  // and the ReLU cut something elsewhere
    for (int64_t i = 2 * p.hw; i < p.size(); ++i) cut += fy[(size_t)i] == 0.0f;
    CHECK(cut > 0);
  }
}

// BN is smooth: central differences carry a truncation error of order h^2 * |f'''| ~ 1e-12 and
// rounding of order 1e-16 * |L| / h ~ 1e-9. Tolerance 1e-6 (absolute and relative) leaves a wide
// margin; dropping either correction term of dx changes it by order 0.1.
TEST_CASE("batch_norm backward matches finite differences in double") {
  struct Case {
    const char* name;
    BatchNormShape shape;
  };
  const Case cases[] = {{"dense 7@1, batch 4", {4, 7, 1}},
                        {"3@3x5, batch 2", {2, 3, 15}},
                        {"2@2x2, batch 3", {3, 2, 4}},
                        {"paper.bn4 512@5x5, batch 2 (subset)", {2, 512, 25}}};
  for (const auto& cs : cases) {
    const BatchNormShape p = cs.shape;
    CAPTURE(cs.name);
    auto x = random_vector_double(p.size(), 61, -2, 2), r = random_vector_double(p.size(), 62);
    auto gamma = random_vector_double(p.c, 63, 0.5, 1.5), beta = random_vector_double(p.c, 64);
    std::vector<double> rm(p.c), rv(p.c), y(p.size()), sm(p.c), si(p.c);
    auto loss = [&]() {
      batch_norm_forward_train_ref<double>(p, x.data(), gamma.data(), beta.data(), 1e-5, 0.1, rm.data(),
                                           rv.data(), y.data(), sm.data(), si.data(), 0, p.c);
      return testing::dot(y, r);
    };
    loss();
    std::vector<double> dx(p.size()), dg(p.c), db(p.c);
    batch_norm_backward_ref<double>(p, x.data(), r.data(), gamma.data(), sm.data(), si.data(), dx.data(),
                                    dg.data(), db.data(), 0, p.c);
    const size_t sx = p.size() > 2000 ? p.size() / 2000 + 1 : 1;
    const size_t sc = p.c > 500 ? 7 : 1;
    bool ok;
    auto ndx = testing::numeric_grad(x, loss, sx, 1e-6);
    std::string msg =
        testing::close_double(testing::every(dx, sx), ndx, 1e-6, 1e-6, &ok);  // see above the test
    CHECK_MESSAGE(ok, "dx: " << msg);
    auto ndg = testing::numeric_grad(gamma, loss, sc, 1e-6);
    msg = testing::close_double(testing::every(dg, sc), ndg, 1e-6, 1e-6, &ok);  // same bound
    CHECK_MESSAGE(ok, "dgamma: " << msg);
    auto ndb = testing::numeric_grad(beta, loss, sc, 1e-6);
    msg = testing::close_double(testing::every(db, sc), ndb, 1e-6, 1e-6, &ok);  // same bound
    CHECK_MESSAGE(ok, "dbeta: " << msg);
  }
}
