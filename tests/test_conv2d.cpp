// conv2d CPU kernels: hand-computed values, fast path (im2col + sgemm) against the reference loops
// on every case of the shared shape table, and finite-difference gradient checks in double of the
// reference backward. Calls the kernels directly: no engine involved.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <algorithm>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_infer.h"
#include "kernels/cpu/conv2d_ref.h"
#include "kernels/cpu/conv2d_thin.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

namespace {

std::string describe(const std::string& name, const Conv2dShape& p) {
  std::ostringstream os;
  os << name << " [n" << p.n << " c" << p.c << " " << p.h << "x" << p.w << " k" << p.k << " " << p.r
     << "x" << p.s << " pad" << p.pad_h << "," << p.pad_w << " stride" << p.stride_h << ","
     << p.stride_w << "]";
  return os.str();
}

// Parity tolerance for a float sum of `terms` products of values in [-1, 1]: the fast path and the
// reference add the same products in different orders. Rounding errors of a length-K sum with
// random signs grow like eps * K * rms(term) (a random walk over partial sums of size sqrt(k)),
// rms(term) = 1/3 here; atol allows 4 * 2^-23 * K. Measured on the whole table (batch 2), the
// worst element of every tensor stays below 1/6 of atol, while a missed, doubled or shifted
// term is of order 0.1 to 1. rtol 1e-5 covers the ~1-ulp rounding of the large outputs.
double parity_atol(double terms) { return 4.0 * std::numeric_limits<float>::epsilon() * terms; }
constexpr double kParityRtol = 1e-5;

}  // namespace

TEST_CASE("conv2d forward: 3x3 on a 4x4 ramp, valid and pad 1 stride 2, by hand") {
  // x = 1..16 row-major, w = 1..9 row-major.
  std::vector<float> x(16), w(9);
  for (int i = 0; i < 16; ++i) x[i] = (float)(i + 1);
  for (int i = 0; i < 9; ++i) w[i] = (float)(i + 1);
  const float b = 0.5f;

  SUBCASE("valid, stride 1") {
    Conv2dShape p = testing::conv_shape(1, 4, 4, 1, 3, 3, 0, 1);
    // y[0,0] = 1*1 + 2*2 + 3*3 + 5*4 + 6*5 + 7*6 + 9*7 + 10*8 + 11*9 = 348; moving the window one
    // column adds 1 to every x (+45 = sum w), one row adds 4 (+180).
    const std::vector<float> want = {348.5f, 393.5f, 528.5f, 573.5f};
    std::vector<float> y_ref(4), y_fast(4);
    conv2d_forward_ref_cpu(p, x.data(), w.data(), &b, y_ref.data());
    conv2d_forward_cpu(p, x.data(), w.data(), &b, y_fast.data());
    // Integers below 2^24: every product and partial sum is exact in float.
    EMOTUNE_CHECK_CLOSE(allclose(y_ref, want, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(y_fast, want, 0, 0));
  }
  SUBCASE("pad 1, stride 2") {
    Conv2dShape p = testing::conv_shape(1, 4, 4, 1, 3, 3, 1, 2);
    REQUIRE(p.out_h() == 2);
    REQUIRE(p.out_w() == 2);
    // y[0,0]: only w[1..2][1..2] overlap the image: 5*1 + 6*2 + 8*5 + 9*6 = 111.
    // y[0,1]: rows -1..1, cols 1..3: (4*2 + 5*3 + 6*4) + (7*6 + 8*7 + 9*8) = 217.
    // y[1,0]: rows 1..3, cols -1..1: (2*5 + 3*6) + (5*9 + 6*10) + (8*13 + 9*14) = 363.
    // y[1,1]: the full window at rows/cols 1..3 = 573 (the valid case's y[1,1]).
    const std::vector<float> want = {111.5f, 217.5f, 363.5f, 573.5f};
    std::vector<float> y_ref(4), y_fast(4);
    conv2d_forward_ref_cpu(p, x.data(), w.data(), &b, y_ref.data());
    conv2d_forward_cpu(p, x.data(), w.data(), &b, y_fast.data());
    // Exact integers again.
    EMOTUNE_CHECK_CLOSE(allclose(y_ref, want, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(y_fast, want, 0, 0));
  }
}

TEST_CASE("conv2d backward: 3x3 valid on a 4x4 ramp with dy = 1, by hand") {
  Conv2dShape p = testing::conv_shape(1, 4, 4, 1, 3, 3, 0, 1);
  std::vector<float> x(16), w(9), dy(4, 1.0f);
  for (int i = 0; i < 16; ++i) x[i] = (float)(i + 1);
  for (int i = 0; i < 9; ++i) w[i] = (float)(i + 1);
  // dx[i,j] = sum of w[i-p, j-q] over the 2x2 output positions (p,q) whose window covers (i,j).
  // Corner (0,0): w[0,0] = 1. Centre (1,1): w00 + w01 + w10 + w11 = 1 + 2 + 4 + 5 = 12.
  // Full table (rows): 1 3 5 3 / 5 12 16 9 / 11 24 28 15 / 7 15 17 9.
  const std::vector<float> dx_want = {1, 3, 5, 3, 5, 12, 16, 9, 11, 24, 28, 15, 7, 15, 17, 9};
  // dw[r,s] = sum over the 2x2 outputs of x[p+r, q+s]: dw[0,0] = 1 + 2 + 5 + 6 = 14, and each step
  // right adds 4 (one per output), each step down adds 16.
  const std::vector<float> dw_want = {14, 18, 22, 30, 34, 38, 46, 50, 54};
  const std::vector<float> db_want = {4};

  for (bool fast : {false, true}) {
    CAPTURE(fast);
    std::vector<float> dx(16, NAN), dw(9, NAN), db(1, NAN);  // NaN: outputs must be overwritten
    if (fast) {
      conv2d_backward_input_cpu(p, dy.data(), w.data(), dx.data());
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw.data(), db.data());
    } else {
      conv2d_backward_input_ref_cpu(p, dy.data(), w.data(), dx.data());
      conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw.data(), db.data());
    }
    // Small integers: exact in float.
    EMOTUNE_CHECK_CLOSE(allclose(dx, dx_want, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(dw, dw_want, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(db, db_want, 0, 0));
  }
}

TEST_CASE("conv2d fast path matches the reference on every shape of the table") {
  for (const auto& cs : testing::conv_cases()) {
    // Batch 2 everywhere; the small edge cases also at batch 1 (the OpenBLAS-threaded path) and 3
    // (an uneven split of the batch over two threads).
    std::vector<int> batches = {2};
    if (!cs.real) batches = {1, 2, 3};
    // The fast path puts several images into one sgemm when OH*OW is small: batch 5 on the 5x5
    // layer makes uneven groups of 2 and 3 images.
    if (cs.real && cs.shape.out_h() * cs.shape.out_w() < 64) batches.push_back(5);
    for (int batch : batches) {
      Conv2dShape p = cs.shape;
      p.n = batch;
      CAPTURE(describe(cs.name, p));
      const uint64_t seed = 1000 + batch;
      auto x = random_vector(p.x_size(), seed);
      auto w = random_vector(p.w_size(), seed + 1);
      auto b = random_vector(p.k, seed + 2);
      auto dy = random_vector(p.y_size(), seed + 3);

      std::vector<float> y_ref(p.y_size()), y_fast(p.y_size(), NAN);
      conv2d_forward_ref_cpu(p, x.data(), w.data(), b.data(), y_ref.data());
      conv2d_forward_cpu(p, x.data(), w.data(), b.data(), y_fast.data());
      // Sums of C*R*S products plus a bias (see parity_atol).
      EMOTUNE_CHECK_CLOSE(allclose(y_fast, y_ref, parity_atol(p.c * p.r * p.s + 1), kParityRtol));

      // Without a bias the fast path must still overwrite y (sgemm with beta = 0).
      std::fill(y_fast.begin(), y_fast.end(), NAN);
      conv2d_forward_ref_cpu(p, x.data(), w.data(), nullptr, y_ref.data());
      conv2d_forward_cpu(p, x.data(), w.data(), nullptr, y_fast.data());
      // Same sums as above, without the bias term.
      EMOTUNE_CHECK_CLOSE(allclose(y_fast, y_ref, parity_atol(p.c * p.r * p.s), kParityRtol));

      // The im2col path on its own (conv2d_forward_cpu takes Winograd on the 3x3 stride-1 layers;
      // its rounding is at the same level, measured <= 0.15 of atol on every real layer).
      std::fill(y_fast.begin(), y_fast.end(), NAN);
      conv2d_forward_im2col_cpu(p, x.data(), w.data(), nullptr, y_fast.data());
      EMOTUNE_CHECK_CLOSE(allclose(y_fast, y_ref, parity_atol(p.c * p.r * p.s), kParityRtol));

      std::vector<float> dx_ref(p.x_size()), dx_fast(p.x_size(), NAN);
      conv2d_backward_input_ref_cpu(p, dy.data(), w.data(), dx_ref.data());
      conv2d_backward_input_cpu(p, dy.data(), w.data(), dx_fast.data());
      // Each dx element sums at most K*R*S products.
      EMOTUNE_CHECK_CLOSE(allclose(dx_fast, dx_ref, parity_atol(p.k * p.r * p.s), kParityRtol));
      std::fill(dx_fast.begin(), dx_fast.end(), NAN);
      conv2d_backward_input_im2col_cpu(p, dy.data(), w.data(), dx_fast.data());
      EMOTUNE_CHECK_CLOSE(allclose(dx_fast, dx_ref, parity_atol(p.k * p.r * p.s), kParityRtol));

      std::vector<float> dw_ref(p.w_size()), dw_fast(p.w_size(), NAN), db_ref(p.k), db_fast(p.k, NAN);
      conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db_ref.data());
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw_fast.data(), db_fast.data());
      const double terms = (double)p.n * p.out_h() * p.out_w();
      // Each dw and db element sums N*OH*OW products (or values).
      EMOTUNE_CHECK_CLOSE(allclose(dw_fast, dw_ref, parity_atol(terms), kParityRtol));
      EMOTUNE_CHECK_CLOSE(allclose(db_fast, db_ref, parity_atol(terms), kParityRtol));

      // db may be null: dw must not change.
      std::vector<float> dw_nodb(p.w_size(), NAN);
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw_nodb.data(), nullptr);
      // Same computation as dw_fast: bit-identical.
      EMOTUNE_CHECK_CLOSE(allclose(dw_nodb, dw_fast, 0, 0));
    }
  }
}

TEST_CASE("conv2d fast path is deterministic: two calls give bit-identical results") {
  Conv2dShape p = testing::conv_shape(17, 13, 11, 33, 3, 3, 1, 1);
  p.n = 5;
  auto x = random_vector(p.x_size(), 7), w = random_vector(p.w_size(), 8), dy = random_vector(p.y_size(), 9);
  std::vector<float> y1(p.y_size()), y2(p.y_size()), dx1(p.x_size()), dx2(p.x_size());
  std::vector<float> dw1(p.w_size()), dw2(p.w_size()), db1(p.k), db2(p.k);
  for (int rep = 0; rep < 2; ++rep) {
    conv2d_forward_cpu(p, x.data(), w.data(), nullptr, rep ? y2.data() : y1.data());
    conv2d_backward_input_cpu(p, dy.data(), w.data(), rep ? dx2.data() : dx1.data());
    conv2d_backward_weight_cpu(p, x.data(), dy.data(), rep ? dw2.data() : dw1.data(), rep ? db2.data() : db1.data());
  }
  // Fixed reduction orders: no tolerance at all.
  EMOTUNE_CHECK_CLOSE(allclose(y2, y1, 0, 0));
  EMOTUNE_CHECK_CLOSE(allclose(dx2, dx1, 0, 0));
  EMOTUNE_CHECK_CLOSE(allclose(dw2, dw1, 0, 0));
  EMOTUNE_CHECK_CLOSE(allclose(db2, db1, 0, 0));
}

// Finite differences of L = sum(y .* r) in double. L is linear in x, in w and in b, so the central
// difference has no truncation error at all; what remains is rounding, about
// eps_double * |L| / h = 1e-16 * 1e2 / 1e-6 = 1e-8 at most here. Tolerance 1e-6 (absolute, on
// gradients of order 1-10, plus 1e-6 relative) leaves 100x margin and still catches any wrong
// index or missed term (an error of order 0.1 or more).
TEST_CASE("conv2d reference backward matches finite differences in double") {
  for (const auto& cs : testing::conv_cases()) {
    if (cs.real) continue;  // the small edge cases: every x, w and b element of them is perturbed
    Conv2dShape p = cs.shape;
    p.n = 2;
    CAPTURE(describe(cs.name, p));
    auto x = random_vector_double(p.x_size(), 11), w = random_vector_double(p.w_size(), 12);
    auto b = random_vector_double(p.k, 13), r = random_vector_double(p.y_size(), 14);
    std::vector<double> y(p.y_size());
    auto loss = [&]() {
      conv2d_forward_ref<double>(p, x.data(), w.data(), b.data(), y.data());
      double s = 0;
      for (size_t i = 0; i < y.size(); ++i) s += y[i] * r[i];
      return s;
    };
    const double h = 1e-6;
    auto numeric = [&](std::vector<double>& v, size_t max_checked) {
      // Every element for small tensors; an evenly spread subset for the largest edge case.
      const size_t step = v.size() > max_checked ? v.size() / max_checked : 1;
      return std::make_pair(testing::numeric_grad(v, loss, step, h), step);
    };

    std::vector<double> dx(p.x_size()), dw(p.w_size()), db(p.k);
    conv2d_backward_input_ref<double>(p, r.data(), w.data(), dx.data());
    conv2d_backward_weight_ref<double>(p, x.data(), r.data(), dw.data(), db.data());

    bool ok;
    auto [ndx, sx] = numeric(x, 600);
    std::string msg =
        testing::close_double(testing::every(dx, sx), ndx, 1e-6, 1e-6, &ok);  // see the comment above
    CHECK_MESSAGE(ok, "dx: " << msg);
    auto [ndw, sw] = numeric(w, 600);
    msg = testing::close_double(testing::every(dw, sw), ndw, 1e-6, 1e-6, &ok);  // same bound
    CHECK_MESSAGE(ok, "dw: " << msg);
    auto [ndb, sb] = numeric(b, 600);
    msg = testing::close_double(testing::every(db, sb), ndb, 1e-6, 1e-6, &ok);  // same bound
    CHECK_MESSAGE(ok, "db: " << msg);
  }
}

// Training's Winograd products, called directly at both tile sizes (conv2d_*_cpu picks one per
// layer): forward (winograd_weights + the Winograd conv), backward-input (the turned filters
// applied to dy, padding 2 - pad) and backward-weight (G^T [sum D . V] G), on every real layer of
// both networks. Tolerance as tests/test_conv2d_infer.cpp derives it: |got - ref| <= f eps * bound,
// bound = the same reference run on absolute values (the sum of |terms| of each output), f = 16
// for F(2x2), 1024 for F(4x4). Backward-weight runs the same three matrices with two of them
// transposed (A for A^T, G^T for G, B unchanged), so the same triple products of absolute
// entries, and the same f, bound it. A wrong tile offset, phase or sign is off by O(|term|).
namespace {

std::vector<float> absolute(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// The worst |got - want| / (tol bound); CHECKs that it is <= 1.
double check_within(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                    const std::vector<float>& bound, double tol) {
  double worst = 0;
  size_t at = 0, bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = std::fabs((double)got[i] - want[i]) / (tol * std::max((double)bound[i], 1e-30));
    if (!(r <= 1)) ++bad;
    if (!(r <= worst)) worst = r, at = i;
  }
  INFO(what, ": worst at [", at, "] got ", got[at], " want ", want[at], " (", worst, " of the tolerance)");
  CHECK(bad == 0);
  return worst;
}

// Winograd's: tol = f eps, f = 16 for F(2x2), 1024 for F(4x4).
double check_bound(const char* what, int tile, const std::vector<float>& got, const std::vector<float>& want,
                   const std::vector<float>& bound) {
  const double f = tile == 4 ? 1024 : 16;
  return check_within(std::string(what) + " F(" + std::to_string(tile) + "x" + std::to_string(tile) + ")", got, want,
                      bound, f * std::numeric_limits<float>::epsilon());
}

}  // namespace

TEST_CASE("conv2d training Winograd products at both tile sizes match the reference on every real layer") {
  double worst[3][5] = {};
  for (const auto& cs : testing::conv_cases()) {
    Conv2dShape p = cs.shape;
    if (!cs.real || !winograd_supported(p) || p.c < 16) continue;
    p.n = 2;
    CAPTURE(describe(cs.name, p));
    auto x = random_vector(p.x_size(), 31), w = random_vector(p.w_size(), 32), dy = random_vector(p.y_size(), 33);
    const auto ax = absolute(x), aw = absolute(w), ady = absolute(dy);
    std::vector<float> y_ref(p.y_size()), y_bound(p.y_size()), dx_ref(p.x_size()), dx_bound(p.x_size());
    std::vector<float> dw_ref(p.w_size()), dw_bound(p.w_size()), db(p.k);
    conv2d_forward_ref_cpu(p, x.data(), w.data(), nullptr, y_ref.data());
    conv2d_forward_ref_cpu(p, ax.data(), aw.data(), nullptr, y_bound.data());
    conv2d_backward_input_ref_cpu(p, dy.data(), w.data(), dx_ref.data());
    conv2d_backward_input_ref_cpu(p, ady.data(), aw.data(), dx_bound.data());
    conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db.data());
    conv2d_backward_weight_ref_cpu(p, ax.data(), ady.data(), dw_bound.data(), db.data());
    for (int tile : {2, 4}) {
      std::vector<float> u((size_t)winograd_weights_size(p, tile)), y(p.y_size(), NAN);
      winograd_weights(p, w.data(), u.data(), tile);
      conv2d_infer_winograd_cpu(p, x.data(), u.data(), nullptr, ConvEpilogue{}, y.data(), tile);
      worst[0][tile] = std::max(worst[0][tile], check_bound("forward", tile, y, y_ref, y_bound));

      const Conv2dShape q{p.n, p.k, p.out_h(), p.out_w(), p.c, 3, 3, 2 - p.pad_h, 2 - p.pad_w, 1, 1};
      REQUIRE(q.out_h() == p.h);
      std::vector<float> ut((size_t)winograd_weights_size(q, tile)), dx(p.x_size(), NAN);
      winograd_weights(p, w.data(), ut.data(), tile, /*turned=*/true);
      conv2d_infer_winograd_cpu(q, dy.data(), ut.data(), nullptr, ConvEpilogue{}, dx.data(), tile);
      worst[1][tile] = std::max(worst[1][tile], check_bound("backward-input", tile, dx, dx_ref, dx_bound));

      std::vector<float> dw(p.w_size(), NAN);
      conv2d_backward_weight_winograd_cpu(p, x.data(), dy.data(), dw.data(), tile);
      worst[2][tile] = std::max(worst[2][tile], check_bound("backward-weight", tile, dw, dw_ref, dw_bound));
    }
  }
  MESSAGE("worst error / tolerance, forward F2 ", worst[0][2], " F4 ", worst[0][4], "; backward-input F2 ",
          worst[1][2], " F4 ", worst[1][4], "; backward-weight F2 ", worst[2][2], " F4 ", worst[2][4]);
}

// The thin direct fp32 form (kernels/cpu/conv2d_thin.h: stride 1, C*R*S <= 16, the first layers).
// Two checks. Exact: integer operands in [-3, 3] make every product and partial sum an integer
// below 2^24 (a forward sum <= 9 * 9 + 3; a dw sum <= 3 * 48 * 48 * 9), exact in float whatever
// the order, so the form must equal the reference loops bit for bit on the real first layers, its
// ReLU and affine (two roundings each side) included: a missed, doubled or shifted term cannot
// hide. Rounding: random operands in [-1, 1] on edge shapes (a row of 37 = 16 + 16 + 5 lanes, K not
// a multiple of the 8 channels per pass, 15 taps that take the one-channel backward pass, pad 0
// and 2), against the reference within both sides' worst case for a sum of n terms,
// 2 gamma_n sum |terms| with gamma_n = n u / (1 - n u), u = 2^-24 (Higham, ch. 3): n = C*R*S + 1
// for the forward (with the bias), n = N*OH*OW for dw. db sums in double on the form's side.
namespace {

std::vector<float> small_ints(size_t n, uint64_t seed) {
  auto v = random_vector(n, seed, -3.5f, 3.5f);
  for (float& x : v) x = std::round(x);
  return v;
}

double gamma_n(double n) {
  const double u = std::ldexp(1.0, -24);
  return n * u / (1 - n * u);
}

}  // namespace

TEST_CASE("conv2d thin direct form: exact integer sums on the real first layers, epilogue included") {
  if (!testing::isa_or_skip(conv2d_thin_applies(testing::conv_shape(1, 48, 48, 64, 3, 3, 1, 1)), "avx512f",
                            "the thin direct fp32 convolution"))
    return;
  for (const auto& cs : testing::conv_cases()) {
    if (!cs.real || cs.shape.c != 1) continue;
    for (int n : {1, 3}) {
      Conv2dShape p = cs.shape;
      p.n = n;
      CAPTURE(describe(cs.name, p));
      REQUIRE(conv2d_thin_applies(p));
      CHECK(std::string(conv2d_cpu_forms(p).forward) == "direct-fp32");
      CHECK(std::string(conv2d_cpu_forms(p).backward_weight) == "direct-fp32");
      const auto x = small_ints(p.x_size(), 41), w = small_ints(p.w_size(), 42), b = small_ints(p.k, 43);
      const auto dy = small_ints(p.y_size(), 44);
      auto scale = random_vector(p.k, 45, 0.5f, 2.0f), shift = random_vector(p.k, 46);
      std::vector<float> want(p.y_size()), y(p.y_size(), NAN), y_train(p.y_size(), NAN);
      conv2d_forward_ref_cpu(p, x.data(), w.data(), b.data(), want.data());
      conv2d_thin_forward(p, x.data(), w.data(), b.data(), false, nullptr, nullptr, y.data());
      conv2d_forward_cpu(p, x.data(), w.data(), b.data(), y_train.data());
      EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));
      EMOTUNE_CHECK_CLOSE(allclose(y_train, want, 0, 0));
      const int64_t plane = (int64_t)p.out_h() * p.out_w();
      for (int64_t i = 0; i < p.y_size(); ++i) {
        const int k = (int)(i / plane % p.k);
        const float v = want[i] > 0 ? want[i] : 0.0f;
        want[i] = v * scale[k] + shift[k];
      }
      conv2d_thin_forward(p, x.data(), w.data(), b.data(), true, scale.data(), shift.data(), y.data());
      EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

      std::vector<float> dw_ref(p.w_size()), db_ref(p.k), dw(p.w_size(), NAN), db(p.k, NAN);
      conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db_ref.data());
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw.data(), db.data());
      EMOTUNE_CHECK_CLOSE(allclose(dw, dw_ref, 0, 0));
      EMOTUNE_CHECK_CLOSE(allclose(db, db_ref, 0, 0));
    }
  }
}

TEST_CASE("conv2d thin direct form: a NaN input passes the ReLU") {
  Conv2dShape p = testing::conv_shape(1, 16, 16, 4, 3, 3, 1, 1);
  if (!testing::isa_or_skip(conv2d_thin_applies(p), "avx512f", "the thin direct fp32 convolution")) return;
  std::vector<float> x(p.x_size(), 1.0f), w(p.w_size(), -1.0f), y(p.y_size(), 0.0f);
  x[5 * 16 + 7] = NAN;  // every output whose window covers (5, 7): rows 4..6, columns 6..8
  conv2d_thin_forward(p, x.data(), w.data(), nullptr, true, nullptr, nullptr, y.data());
  for (int k = 0; k < p.k; ++k)
    for (int oy = 0; oy < 16; ++oy)
      for (int ox = 0; ox < 16; ++ox) {
        const bool covers = oy >= 4 && oy <= 6 && ox >= 6 && ox <= 8;
        const float v = y[((size_t)k * 16 + oy) * 16 + ox];
        CAPTURE(k); CAPTURE(oy); CAPTURE(ox);
        CHECK(std::isnan(v) == covers);
        if (!covers) CHECK(v == 0.0f);  // all sums negative: the ReLU's zero
      }
}

TEST_CASE("conv2d thin direct form: random operands within float's worst case on edge shapes") {
  struct Case {
    Conv2dShape p;
    int n;
  };
  const std::vector<Case> cases = {
      {testing::conv_shape(1, 20, 37, 11, 3, 3, 1, 1), 3},  // 37 = 16 + 16 + 5 lanes, K = 8 + 3
      {testing::conv_shape(1, 21, 40, 5, 3, 3, 0, 1), 2},   // valid: 38 columns
      {testing::conv_shape(1, 17, 18, 6, 3, 5, 2, 1), 1},   // 15 taps (one channel per dw pass), pad 2
      {testing::conv_shape(2, 9, 16, 3, 3, 1, 1, 1), 2},    // two channels, 3x1
      {testing::conv_shape(4, 8, 16, 9, 1, 1, 0, 1), 3},    // pointwise over 4 channels, one 16-lane chunk
  };
  if (!testing::isa_or_skip(conv2d_thin_applies(cases[0].p), "avx512f", "the thin direct fp32 convolution")) return;
  double worst[3] = {};
  for (const auto& cs : cases) {
    Conv2dShape p = cs.p;
    p.n = cs.n;
    CAPTURE(describe("edge", p));
    REQUIRE(conv2d_thin_applies(p));
    const auto x = random_vector(p.x_size(), 51), w = random_vector(p.w_size(), 52), b = random_vector(p.k, 53);
    const auto dy = random_vector(p.y_size(), 54);
    const auto ax = absolute(x), aw = absolute(w), ab = absolute(b), ady = absolute(dy);
    std::vector<float> y_ref(p.y_size()), y_bound(p.y_size()), y(p.y_size(), NAN);
    conv2d_forward_ref_cpu(p, x.data(), w.data(), b.data(), y_ref.data());
    conv2d_forward_ref_cpu(p, ax.data(), aw.data(), ab.data(), y_bound.data());
    conv2d_thin_forward(p, x.data(), w.data(), b.data(), false, nullptr, nullptr, y.data());
    std::vector<float> dw_ref(p.w_size()), db_ref(p.k), dw_bound(p.w_size()), db_bound(p.k);
    std::vector<float> dw(p.w_size(), NAN), db(p.k, NAN);
    conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db_ref.data());
    conv2d_backward_weight_ref_cpu(p, ax.data(), ady.data(), dw_bound.data(), db_bound.data());
    conv2d_thin_backward_weight(p, x.data(), dy.data(), dw.data(), db.data());
    const double fwd = 2 * gamma_n(p.c * p.r * p.s + 1), bwd = 2 * gamma_n((double)p.n * p.out_h() * p.out_w());
    worst[0] = std::max(worst[0], check_within("thin forward", y, y_ref, y_bound, fwd));
    worst[1] = std::max(worst[1], check_within("thin dw", dw, dw_ref, dw_bound, bwd));
    worst[2] = std::max(worst[2], check_within("thin db", db, db_ref, db_bound, bwd));
  }
  MESSAGE("thin direct form, worst error / bound: forward ", worst[0], ", dw ", worst[1], ", db ", worst[2]);
  CHECK(!conv2d_thin_applies(testing::conv_shape(1, 48, 48, 64, 3, 3, 1, 2)));   // stride 2
  CHECK(!conv2d_thin_applies(testing::conv_shape(2, 48, 48, 64, 3, 3, 1, 1)));   // 18 taps
  CHECK(!conv2d_thin_applies(testing::conv_shape(1, 48, 14, 64, 3, 3, 1, 1)));   // a row of 14
}

TEST_CASE("conv2d thin direct form: backward-weight against central differences of its own forward") {
  // L(w, b) = sum dy . y(w, b) is linear in w and b, so a central difference with step 1 has no
  // truncation error: (L(w + e_i) - L(w - e_i)) / 2 is dL/dw_i up to the rounding of the two
  // forwards, each output within gamma_(T+1) (|terms| <= |y| + 1 here, operands in [-1, 1]) of
  // exact, L summed in double: 2 gamma_(T+1) sum |dy| (|y| + 1) over both forwards; plus the
  // backward's own float sum over N OH OW terms, 2 gamma_(N OH OW) sum |dy x| (its reference run on
  // absolute values).
  Conv2dShape p = testing::conv_shape(1, 16, 19, 3, 3, 3, 1, 1);
  p.n = 2;
  if (!testing::isa_or_skip(conv2d_thin_applies(p), "avx512f", "the thin direct fp32 convolution")) return;
  auto x = random_vector(p.x_size(), 61), w = random_vector(p.w_size(), 62), b = random_vector(p.k, 63);
  const auto dy = random_vector(p.y_size(), 64);
  std::vector<float> dw(p.w_size(), NAN), db(p.k, NAN), y(p.y_size());
  conv2d_thin_backward_weight(p, x.data(), dy.data(), dw.data(), db.data());
  auto loss = [&](const std::vector<float>& wv, const std::vector<float>& bv, double* scale) {
    conv2d_thin_forward(p, x.data(), wv.data(), bv.data(), false, nullptr, nullptr, y.data());
    double l = 0, s = 0;
    for (int64_t i = 0; i < p.y_size(); ++i) l += (double)dy[i] * y[i], s += std::fabs((double)dy[i]) * (std::fabs(y[i]) + 1);
    if (scale) *scale = s;
    return l;
  };
  const double g = 2 * gamma_n(p.c * p.r * p.s + 1), gb = 2 * gamma_n((double)p.n * p.out_h() * p.out_w());
  const auto ax = absolute(x), ady = absolute(dy);
  std::vector<float> dw_bound(p.w_size()), db_bound(p.k);
  conv2d_backward_weight_ref_cpu(p, ax.data(), ady.data(), dw_bound.data(), db_bound.data());
  auto fd_check = [&](std::vector<float>& v, const std::vector<float>& got, const std::vector<float>& bound,
                      const char* what) {
    for (size_t i = 0; i < v.size(); ++i) {
      const float keep = v[i];
      double s1, s2;
      v[i] = keep + 1.0f;
      const double lp = loss(w, b, &s1);
      v[i] = keep - 1.0f;
      const double lm = loss(w, b, &s2);
      v[i] = keep;
      const double fd = (lp - lm) / 2;
      CAPTURE(what); CAPTURE(i); CAPTURE(fd); CAPTURE(got[i]);
      CHECK(std::fabs(fd - got[i]) <= g * (s1 + s2) + gb * bound[i]);
    }
  };
  fd_check(w, dw, dw_bound, "dw");
  fd_check(b, db, db_bound, "db");
}
