// max_pool2d and batch_norm CPU kernels: hand-computed cases, the threaded kernels against the
// templated reference on the shape table, and finite-difference gradient checks in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/cpu/batch_norm_ref.h"
#include "kernels/cpu/max_pool2d_ref.h"
#include "kernels/max_pool2d.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

// ---------------------------------------------------------------------------------------------
// max_pool2d

TEST_CASE("max_pool2d 2x2 stride 2 on a 4x4 image, by hand, ties to the first maximum") {
  Pool2dShape p = testing::pool_shape(1, 4, 4, 2, 2);
  const std::vector<float> x = {1, 5, 2, 0,   //
                                3, -1, 4, 8,  //
                                0, 0, 7, 6,   //
                                -2, 9, 6, 7};
  std::vector<float> y(4, NAN);
  max_pool2d_forward_cpu(p, x.data(), y.data());
  // Window maxima: {1,5,3,-1} -> 5, {2,0,4,8} -> 8, {0,0,-2,9} -> 9, {7,6,6,7} -> 7.
  EMOTUNE_CHECK_CLOSE(allclose(y, {5, 8, 9, 7}, 0, 0));  // a copy of one input: exact

  const std::vector<float> dy = {1, 2, 3, 4};
  std::vector<float> dx(16, NAN);
  max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data());
  // Each dy goes to its window's maximum; the last window has 7 at (2,2) and (3,3): the first in
  // row-major order, (2,2), takes it.
  const std::vector<float> want = {0, 1, 0, 0,  //
                                   0, 0, 0, 2,  //
                                   0, 0, 4, 0,  //
                                   0, 3, 0, 0};
  EMOTUNE_CHECK_CLOSE(allclose(dx, want, 0, 0));  // copies of dy and zeros: exact
}

TEST_CASE("max_pool2d: odd sizes floor, overlapping windows add, NaN propagates") {
  SUBCASE("5x5, 2x2 stride 2: the last row and column are never read") {
    Pool2dShape p = testing::pool_shape(1, 5, 5, 2, 2);
    REQUIRE(p.out_h() == 2);
    std::vector<float> x(25);
    for (int i = 0; i < 25; ++i) x[i] = (float)i;  // maxima at the bottom-right of each window
    std::vector<float> y(4), dx(25, NAN), dy = {1, 1, 1, 1};
    max_pool2d_forward_cpu(p, x.data(), y.data());
    EMOTUNE_CHECK_CLOSE(allclose(y, {6, 8, 16, 18}, 0, 0));  // exact copies
    max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data());
    float last = 0;
    for (int i = 0; i < 5; ++i) last += std::fabs(dx[20 + i]) + std::fabs(dx[i * 5 + 4]);
    CHECK(last == 0.0f);
    CHECK(dx[6] == 1.0f);
    CHECK(dx[18] == 1.0f);
  }
  SUBCASE("3x3 stride 2 on 5x5: a maximum shared by all four windows gets every gradient") {
    Pool2dShape p = testing::pool_shape(1, 5, 5, 3, 2);
    REQUIRE(p.out_h() == 2);
    std::vector<float> x = random_vector(25, 3, -1, 0);
    x[12] = 5;  // the centre (2,2) lies in all four windows
    std::vector<float> y(4), dx(25), dy = {0.5f, 1.0f, 2.0f, 4.0f};
    max_pool2d_forward_cpu(p, x.data(), y.data());
    EMOTUNE_CHECK_CLOSE(allclose(y, {5, 5, 5, 5}, 0, 0));  // exact copies
    max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data());
    CHECK(dx[12] == 7.5f);  // 0.5 + 1 + 2 + 4, exact in float
    CHECK(std::accumulate(dx.begin(), dx.end(), 0.0f) == 7.5f);
  }
  SUBCASE("NaN in a window is the window's output") {
    Pool2dShape p = testing::pool_shape(1, 2, 4, 2, 2);
    std::vector<float> x = {1, 2, 3, 4, NAN, 0, 5, 6};
    std::vector<float> y(2);
    max_pool2d_forward_cpu(p, x.data(), y.data());
    CHECK(std::isnan(y[0]));
    CHECK(y[1] == 6.0f);
  }
}

TEST_CASE("max_pool2d threaded kernel equals the reference on the pool table") {
  for (const auto& pc : testing::pool_cases()) {
    Pool2dShape p = pc.shape;
    p.n = 2;
    CAPTURE(pc.name);
    auto x = random_vector(p.x_size(), 21), dy = random_vector(p.y_size(), 22);
    std::vector<float> y(p.y_size()), y_ref(p.y_size()), dx(p.x_size(), NAN), dx_ref(p.x_size());
    max_pool2d_forward_cpu(p, x.data(), y.data());
    max_pool2d_forward_ref<float>(p, x.data(), y_ref.data());
    max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data());
    max_pool2d_backward_ref<float>(p, x.data(), dy.data(), dx_ref.data());
    // Same selections and the same additions in the same order: bit-identical.
    EMOTUNE_CHECK_CLOSE(allclose(y, y_ref, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(dx, dx_ref, 0, 0));
  }
}

// Pooling is piecewise linear; with every input distinct and at least 0.01 apart, no window's
// maximum changes for |h| < 0.005, so the central difference is exact up to rounding. h = 1e-3
// (not 1e-6 as for smooth ops) because L sums up to 68k terms of size up to ~1e3 on the paper
// shapes: the rounding of L, ~sqrt(terms) * eps * |L| ~ 1e-10, divided by h stays ~1e-7 (with
// h = 1e-6 it reached 3e-5, measured). Tolerance 1e-6; a misrouted gradient is off by ~1.
TEST_CASE("max_pool2d backward matches finite differences in double") {
  for (const auto& pc : testing::pool_cases()) {
    Pool2dShape p = pc.shape;
    p.n = 2;
    CAPTURE(pc.name);
    const size_t nx = p.x_size();
    // A seeded permutation of 0.01 * (0 .. nx-1): distinct values, far apart.
    auto key = random_vector_double(nx, 31);
    std::vector<size_t> order(nx);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key[a] < key[b]; });
    std::vector<double> x(nx);
    for (size_t i = 0; i < nx; ++i) x[order[i]] = 0.01 * (double)i - 0.005 * (double)nx;
    auto r = random_vector_double(p.y_size(), 32);
    std::vector<double> y(p.y_size()), dx(nx);
    auto loss = [&]() {
      max_pool2d_forward_ref<double>(p, x.data(), y.data());
      return testing::dot(y, r);
    };
    max_pool2d_backward_ref<double>(p, x.data(), r.data(), dx.data());
    const size_t step = nx > 600 ? nx / 600 + 1 : 1;  // a spread subset on the paper shapes
    auto num = testing::numeric_grad(x, loss, step, 1e-3);
    bool ok;
    std::string msg =
        testing::close_double(testing::every(dx, step), num, 1e-6, 1e-6, &ok);  // see above the test
    CHECK_MESSAGE(ok, msg);
  }
}

// ---------------------------------------------------------------------------------------------
// batch_norm

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
