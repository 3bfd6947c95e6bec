// elementwise CPU kernels (fill, add, mul, scale, scale_dev, axpy, relu, sum_squares), small and
// above the threading threshold, in place, and relu's kink and NaN rules.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;

TEST_CASE("elementwise ops, small and above the threading threshold, in place allowed") {
  for (int64_t n : {int64_t(7), int64_t(200003)}) {
    CAPTURE(n);
    auto a = random_vector(n, 81), b = random_vector(n, 82);
    std::vector<float> y(n), want(n);

    fill_cpu(n, 2.5f, y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = 2.5f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));  // every elementwise result is one float op: exact

    add_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] + b[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    mul_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] * b[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    scale_cpu(n, -3.0f, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = -3.0f * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    y = b;
    axpy_cpu(n, 0.5f, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = b[i] + 0.5f * a[i];
    // y += alpha * x may be fused into one fma (no second rounding): one ulp of |y| <= 1.5.
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 2e-7, 2e-7));

    // in place: y == x
    y = a;
    scale_cpu(n, 2.0f, y.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = 2.0f * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    // scale_dev reads the scale from device memory, even when it is the first element of y
    y = a;
    const float a0 = a[0];
    scale_dev_cpu(n, y.data(), y.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a0 * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    relu_forward_cpu(n, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] > 0 ? a[i] : 0.0f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    relu_backward_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] > 0 ? b[i] : 0.0f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    float ss = NAN;
    sum_squares_cpu(n, a.data(), &ss);
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += (double)a[i] * a[i];
    // Summed in double, rounded once to float: half an ulp.
    CHECK(std::fabs(ss - exact) <= 6e-8 * exact);
  }
  // relu at the kink gets 0 gradient; a NaN passes relu forward (so a NaN reaches the loss).
  const std::vector<float> x = {0.0f, -0.0f, NAN, 1.0f, -1.0f}, dy = {5, 5, 5, 5, 5};
  std::vector<float> y(5), dx(5);
  relu_forward_cpu(5, x.data(), y.data());
  relu_backward_cpu(5, x.data(), dy.data(), dx.data());
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == 0.0f);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.0f);
  CHECK(y[4] == 0.0f);
  CHECK(dx[0] == 0.0f);
  CHECK(dx[3] == 5.0f);
  CHECK(dx[4] == 0.0f);
  float ss = NAN;
  sum_squares_cpu(0, x.data(), &ss);
  CHECK(ss == 0.0f);
}
