// max_pool2d CPU kernels: hand-computed cases (ties, odd sizes, overlapping windows, NaN), the
// threaded kernel against the templated reference on the pool table, and a finite-difference
// gradient check in double.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <string>
#include <vector>

#include "kernels/cpu/max_pool2d_ref.h"
#include "kernels/max_pool2d.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

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

TEST_CASE("max_pool2d 2x2 stride 2 fast path: ties, NaNs and odd sizes as the reference, bit for bit") {
  // Inputs from {-2, -1, 0, 1, 2} (windows with tied maxima everywhere) with 2% NaNs, on even and
  // odd planes: the kernel's 2x2 loops must pick the same element as the reference's argmax (the
  // first maximum in row-major order, the first NaN), and leave 0 in the odd last row and column.
  // Both forms: the rows 16 windows at a time (where AVX-512 is present; widths 48 and 70 give
  // full blocks and a tail) and the portable loops.
  for (bool portable : {false, true})
  for (auto [h, w] : {std::pair{6, 8}, std::pair{7, 5}, std::pair{23, 23}, std::pair{2, 3}, std::pair{5, 48},
                      std::pair{4, 70}}) {
    max_pool2d_force_portable_for_testing(portable);
    CAPTURE(portable);
    Pool2dShape p;
    p.n = 2;
    p.c = 3;
    p.h = h;
    p.w = w;
    CAPTURE(h);
    CAPTURE(w);
    auto u = random_vector(p.x_size(), 91, 0.0f, 1.0f);
    std::vector<float> x(p.x_size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = u[i] < 0.02f ? NAN : std::floor(u[i] * 5.0f) - 2.0f;
    auto dy = random_vector(p.y_size(), 92);
    std::vector<float> y(p.y_size()), y_ref(p.y_size()), dx(p.x_size(), 7.0f), dx_ref(p.x_size());
    max_pool2d_forward_cpu(p, x.data(), y.data());
    max_pool2d_forward_ref<float>(p, x.data(), y_ref.data());
    max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data());
    max_pool2d_backward_ref<float>(p, x.data(), dy.data(), dx_ref.data());
    int64_t y_diff = 0, dx_diff = 0, nans = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      nans += std::isnan(y_ref[i]);
      y_diff += !(std::isnan(y[i]) && std::isnan(y_ref[i])) && y[i] != y_ref[i];
    }
    for (size_t i = 0; i < dx.size(); ++i) dx_diff += dx[i] != dx_ref[i];
    CHECK(y_diff == 0);
    CHECK(dx_diff == 0);
    if (h > 6) CHECK(nans > 0);  // the case does exercise NaN windows
  }
  max_pool2d_force_portable_for_testing(false);
}
