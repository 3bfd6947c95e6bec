// The bf16 precision (kernels/runtime.h): every conv and dense product of both networks, as
// training runs them (conv2d_*_cpu picks a form per layer and direction: kernels/conv2d.h,
// conv2d_cpu_forms; linear through gemm), against the fp32 reference loops, with bounds derived
// from bfloat16's rounding:
//   an operand rounded to 8 significant bits moves by at most u = 2^-8 of itself, so a product of
//   two rounded operands by at most (1 + u)^2 - 1 = 2u + u^2 of |a b|.
//   direct / im2col / dense: the products are the direct terms: |err| <= (2u + u^2 + gamma) * sum |terms|.
//   Winograd F(2x2) backward-weight, dw = G^T [(B^T X B) . (A dY A^T)] G per tile: the rounded
//   operands are the transformed tiles, so in magnitudes a tap's error also spans the x-dy pairs
//   of the other taps' offsets, each weighted by the transforms' magnitudes (up to 2 per axis:
//   winograd2_weight_gain). The bound is that weighted sum of the direct sums at the three offsets
//   per axis, not a multiple of the tap's own: a tap whose own terms are all zero gets errors
//   (the case "a tap with no terms of its own" shows it; the Keras oracle found it on real data,
//   tests/oracle/keras_oracle.py). Plus fp32's part (16 eps, tests/test_conv2d.cpp, and 4 eps per
//   term of the reduction).
//   Winograd F(2x2) forward (the inference graph's, conv2d_infer_winograd_cpu): likewise each tap
//   meets the other inputs of the output's window: winograd2_forward_gain / _bound.
// A wrong term is caught by the fp32 tests of the same code; here the point is that bf16 stays
// inside its bound on every real layer, that fp32 stays the default, and that the switch is live
// (bf16 results differ from fp32 ones).
#include <doctest/doctest.h>
#include <omp.h>

#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_infer.h"
#include "kernels/cpu/conv2d_bf16_direct.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/linear.h"
#include "kernels/runtime.h"
#include "tests/bf16_kernels.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;

namespace {

constexpr double kU = 1.0 / 256;
constexpr double kEps = std::numeric_limits<float>::epsilon();
constexpr double kProduct = 2 * kU + kU * kU;

// Sets bf16 for the scope, fp32 again after.
struct Bf16Scope {
  Bf16Scope() { set_cpu_precision(Precision::bf16); }
  ~Bf16Scope() { set_cpu_precision(Precision::fp32); }
};

// Sets training's conv mode for the scope, the previous one again after.
struct TrainConvScope {
  TrainConvMode saved = train_conv_mode();
  explicit TrainConvScope(TrainConvMode m) { set_train_conv_mode(m); }
  ~TrainConvScope() { set_train_conv_mode(saved); }
};

std::vector<float> absolute(const std::vector<float>& v) {
  std::vector<float> a(v.size());
  for (size_t i = 0; i < v.size(); ++i) a[i] = std::fabs(v[i]);
  return a;
}

// Worst |got - want| / (factor * bound); CHECKs <= 1. Also returns whether got differs from fp32.
double check(const char* what, const std::vector<float>& got, const std::vector<float>& want,
             const std::vector<float>& bound, double factor) {
  double worst = 0;
  size_t at = 0, bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double r = std::fabs((double)got[i] - want[i]) / (factor * std::max((double)bound[i], 1e-30));
    if (!(r <= 1)) ++bad;
    if (!(r <= worst)) worst = r, at = i;
  }
  INFO(what, ": worst at [", at, "] got ", got[at], " want ", want[at], " (", worst, " of the bound)");
  CHECK(bad == 0);
  return worst;
}

// F(2x2, 3x3)'s matrices (kernels/cpu/conv2d_infer.cpp): y = A^T [(G g) . (B^T d)] per axis.
constexpr double kWgBt[4][4] = {{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, 1, 0, -1}};
constexpr double kWgG[4][3] = {{1, 0, 0}, {.5, .5, .5}, {.5, -.5, .5}, {0, 0, 1}};
constexpr double kWgA[4][2] = {{1, 0}, {1, 1}, {1, -1}, {0, -1}};  // A = (A^T)^T

// c[r][d]: the weight of the direct sum at offset d (0..2) in tap r's bound for Winograd F(2x2)'s
// backward-weight, one axis (two: c[r][d] c[s][e]). The pair (x's tile element a + d, dy's
// element a) reaches tap r with weight sum_i |G[i][r]| |B^T[i][a + d]| |A[i][a]|; over the tiles
// the pairs of each output parity a make up part of the correlation at offset d, so the larger
// weight of the two parities bounds it (offsets -1 and 3 get none). Signed, the weights are the
// identity (the transforms compute the direct sum): CHECKed, so a wrong matrix here fails.
using Gain3 = std::array<std::array<double, 3>, 3>;
Gain3 winograd2_weight_gain() {
  Gain3 c{};
  for (int r = 0; r < 3; ++r)
    for (int d = -1; d <= 3; ++d)
      for (int par = 0; par < 2; ++par) {
        if (par + d < 0 || par + d > 3) continue;
        double mag = 0, sig = 0;
        for (int i = 0; i < 4; ++i) {
          mag += std::fabs(kWgG[i][r] * kWgBt[i][par + d] * kWgA[i][par]);
          sig += kWgG[i][r] * kWgBt[i][par + d] * kWgA[i][par];
        }
        CHECK(sig == (d == r ? 1.0 : 0.0));
        if (d < 0 || d > 2) {
          CHECK(mag == 0.0);
          continue;
        }
        c[r][d] = std::max(c[r][d], mag);
      }
  return c;
}

// The bound of dw [K, C, 3, 3] in the form it ran: the direct sums themselves, or their
// Winograd-weighted sums.
std::vector<float> weight_bound(const Conv2dShape& p, const std::string& form, const std::vector<float>& direct) {
  if (form == "im2col" || form == "direct-bf16" || form == "direct-fp32") return direct;
  REQUIRE(form == "winograd2");  // bf16 keeps to F(2x2) (kernels/cpu/conv2d.cpp, train_tile)
  const Gain3 c = winograd2_weight_gain();
  std::vector<float> out(direct.size());
  for (int64_t kc = 0; kc < (int64_t)p.k * p.c; ++kc)
    for (int r = 0; r < 3; ++r)
      for (int s = 0; s < 3; ++s) {
        double v = 0;
        for (int d = 0; d < 3; ++d)
          for (int e = 0; e < 3; ++e) v += c[r][d] * c[s][e] * direct[(size_t)kc * 9 + d * 3 + e];
        out[(size_t)kc * 9 + r * 3 + s] = (float)v;
      }
  return out;
}

// e[j + 3], j in -3..3: the weight of the direct sum at output o + j in the bound of output o of
// Winograd F(2x2)'s forward, one axis (two: e[jh] e[jw]). Output a of a tile pairs tap r with the
// tile's input element p through sum_i |A^T[a][i]| |G[i][r]| |B^T[i][p]|, and that pair is the
// term of tap r at output o + j, j = p - a - r; the largest weight over a and r bounds it (so the
// tiles' alignment does not matter). Signed, the weights are 1 where p = a + r and 0 elsewhere:
// CHECKed.
std::array<double, 7> winograd2_forward_gain() {
  std::array<double, 7> e{};
  for (int a = 0; a < 2; ++a)
    for (int r = 0; r < 3; ++r)
      for (int p = 0; p < 4; ++p) {
        double mag = 0, sig = 0;
        for (int i = 0; i < 4; ++i) {
          mag += std::fabs(kWgA[i][a] * kWgG[i][r] * kWgBt[i][p]);
          sig += kWgA[i][a] * kWgG[i][r] * kWgBt[i][p];
        }
        CHECK(sig == (p == a + r ? 1.0 : 0.0));
        e[(size_t)(p - a - r + 3)] = std::max(e[(size_t)(p - a - r + 3)], mag);
      }
  return e;
}

// The bound of a Winograd F(2x2) forward y [N, K, OH, OW]: the e-weighted sums of the direct
// bound (the conv of |x| with |w|) at the outputs up to 3 away, computed on a grid 3 wider on
// each side (more padding: x is zero there).
std::vector<float> winograd2_forward_bound(const Conv2dShape& p, const std::vector<float>& ax,
                                           const std::vector<float>& aw) {
  Conv2dShape q = p;
  q.pad_h += 3;
  q.pad_w += 3;
  std::vector<float> d((size_t)q.y_size());
  conv2d_forward_ref_cpu(q, ax.data(), aw.data(), nullptr, d.data());
  const auto e = winograd2_forward_gain();
  const int oh = p.out_h(), ow = p.out_w(), qw = q.out_w();
  std::vector<float> out((size_t)p.y_size());
  for (int64_t nk = 0; nk < (int64_t)p.n * p.k; ++nk)
    for (int i = 0; i < oh; ++i)
      for (int j = 0; j < ow; ++j) {
        double v = 0;
        for (int di = -3; di <= 3; ++di)
          for (int dj = -3; dj <= 3; ++dj)
            v += e[di + 3] * e[dj + 3] * d[(size_t)nk * q.out_h() * qw + (size_t)(i + 3 + di) * qw + (j + 3 + dj)];
        out[(size_t)nk * oh * ow + (size_t)i * ow + j] = (float)v;
      }
  return out;
}

bool bf16_or_skip(const char* what) { return testing::isa_or_skip(cpu_bf16_available(), "avx512_bf16", what); }

}  // namespace

TEST_CASE("precision: fp32 is the default, bf16 refused where the CPU lacks it") {
  CHECK(cpu_precision() == Precision::fp32);
  if (!cpu_bf16_available()) CHECK_THROWS(set_cpu_precision(Precision::bf16));
}

TEST_CASE("precision bf16: every conv layer of both networks, forward and both backwards, in bound") {
  if (!bf16_or_skip("bf16 conv layers")) return;
  double worst[3] = {};
  int differs = 0, layers = 0;
  for (const auto& cs : testing::conv_cases()) {
    Conv2dShape p = cs.shape;
    p.n = 4;
    CAPTURE(cs.name);
    auto x = random_vector(p.x_size(), 41), w = random_vector(p.w_size(), 42), dy = random_vector(p.y_size(), 43);
    const auto ax = absolute(x), aw = absolute(w), ady = absolute(dy);
    std::vector<float> y_ref(p.y_size()), y_bound(p.y_size()), dx_ref(p.x_size()), dx_bound(p.x_size());
    std::vector<float> dw_ref(p.w_size()), dw_bound(p.w_size()), db(p.k);
    conv2d_forward_ref_cpu(p, x.data(), w.data(), nullptr, y_ref.data());
    conv2d_forward_ref_cpu(p, ax.data(), aw.data(), nullptr, y_bound.data());
    conv2d_backward_input_ref_cpu(p, dy.data(), w.data(), dx_ref.data());
    conv2d_backward_input_ref_cpu(p, ady.data(), aw.data(), dx_bound.data());
    conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db.data());
    conv2d_backward_weight_ref_cpu(p, ax.data(), ady.data(), dw_bound.data(), db.data());
    std::vector<float> y32(p.y_size()), y(p.y_size(), NAN), dx(p.x_size(), NAN), dw(p.w_size(), NAN);
    conv2d_forward_cpu(p, x.data(), w.data(), nullptr, y32.data());
    Conv2dCpuForms forms;
    {
      Bf16Scope bf16;
      forms = conv2d_cpu_forms(p);
      conv2d_forward_cpu(p, x.data(), w.data(), nullptr, y.data());
      conv2d_backward_input_cpu(p, dy.data(), w.data(), dx.data());
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw.data(), db.data());
    }
    // Forward and backward-input run direct (or im2col for the first layer): the direct sums'
    // bound. A Winograd form there would need the stencil bound (winograd2_forward_bound, of dy
    // with the turned filters for backward-input), which this case does not apply: it stops instead.
    INFO("forms: ", forms.forward, ", ", forms.backward_input, ", ", forms.backward_weight);
    for (const std::string f : {forms.forward, forms.backward_input}) REQUIRE((f == "direct-bf16" || f == "direct-fp32" || f == "im2col"));
    // fp32's part: 16 eps (tests/test_conv2d.cpp) and the parity test's 4 eps per term of the
    // reduction (below 2u + u^2 for the 9 C terms here only up to C ~ 200, so it is added).
    const double f = kProduct + 16 * kEps;
    worst[0] = std::max(worst[0], check("forward", y, y_ref, y_bound, f + 4 * kEps * p.c * 9));
    worst[1] = std::max(worst[1], check("backward-input", dx, dx_ref, dx_bound, f + 4 * kEps * p.k * 9));
    worst[2] = std::max(worst[2], check("backward-weight", dw, dw_ref, weight_bound(p, forms.backward_weight, dw_bound),
                                        f + 4 * kEps * p.n * p.out_h() * p.out_w()));
    // The forward's reduction is c (Winograd) or c r s (im2col): below kBf16MinReduction either
    // way it stays fp32 (the networks' first layer, one input channel); from c on, bf16 either way.
    if (p.c * p.r * p.s < kBf16MinReduction) {
      CHECK(y == y32);
    } else if (p.c >= kBf16MinReduction) {
      differs += y != y32;
      ++layers;
    }
  }
  MESSAGE("worst error / bound: forward ", worst[0], ", backward-input ", worst[1], ", backward-weight ", worst[2]);
  CHECK(layers > 0);
  CHECK(differs == layers);  // every other layer really ran in bf16
}

TEST_CASE("precision bf16: backward-weight of a tap with no terms of its own stays in the Winograd bound") {
  if (!bf16_or_skip("bf16 Winograd backward-weight")) return;
  // paper's conv7 in small: 6x6, padding 1. dy only on the first output row and column, so that
  // tap (0, 0) meets only padding: its exact gradient and its own direct sum are 0, while the
  // other taps' sums are not.
  Conv2dShape p{8, 32, 6, 6, 32, 3, 3, 1, 1, 1, 1};
  auto x = random_vector(p.x_size(), 91), w = random_vector(p.w_size(), 92), dy = random_vector(p.y_size(), 93);
  for (int64_t i = 0; i < p.y_size(); ++i)
    if ((i / 6) % 6 != 0 && i % 6 != 0) dy[(size_t)i] = 0;
  std::vector<float> dw_ref(p.w_size()), dw_bound(p.w_size()), db(p.k), dw(p.w_size(), NAN);
  conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db.data());
  conv2d_backward_weight_ref_cpu(p, absolute(x).data(), absolute(dy).data(), dw_bound.data(), db.data());
  std::string form;
  {
    Bf16Scope bf16;
    // Winograd by name: on the avx512-bf16 kernel auto runs this direct (whose bound is its own
    // terms: the next case); the Winograd form is auto's on AMX.
    TrainConvScope winograd(TrainConvMode::winograd2);
    form = conv2d_cpu_forms(p).backward_weight;
    conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw.data(), db.data());
  }
  REQUIRE(form == "winograd2");
  double own = 0;
  for (int64_t kc = 0; kc < (int64_t)p.k * p.c; ++kc) {
    CHECK(dw_bound[(size_t)kc * 9] == 0.0f);
    own = std::max(own, (double)std::fabs(dw[(size_t)kc * 9]));
  }
  check("backward-weight", dw, dw_ref, weight_bound(p, form, dw_bound), kProduct + 16 * kEps + 4 * kEps * p.n * 36);
  // Nonzero where the exact value and the tap's own terms are 0: no multiple of them bounds it.
  CHECK(own > 0);
  MESSAGE("tap (0, 0): largest |dw| ", own, " where the exact value is 0");
}

TEST_CASE("precision bf16: the inference graph's Winograd F(2x2) forward is within its bound on every layer") {
  if (!bf16_or_skip("bf16 Winograd forward")) return;
  double worst = 0, worst_adversarial = 0;
  int layers = 0;
  for (const auto& cs : testing::conv_cases()) {
    Conv2dShape p = cs.shape;
    if (!winograd_supported(p) || p.c < kBf16MinReduction) continue;  // fewer channels: fp32
    p.n = 2;
    CAPTURE(cs.name);
    for (const bool adversarial : {false, true}) {
      auto x = random_vector(p.x_size(), 81), w = random_vector(p.w_size(), 82);
      // Adversarial: the filters only at tap (0, 0), x only where (position + pad) % 4 is 1 or 2
      // on both axes. An output at a multiple of 4 on both axes then has no terms of its own (its
      // window's residues 0, 1, 2 meet the taps 0, 1, 2, and only tap 0 is nonzero, where x is 0),
      // yet Winograd pairs tap 0 with the window's other inputs through the transformed tiles
      // (B^T d mixes d1 and d2, rounded to bf16 apart), so its result is not exactly 0.
      if (adversarial) {
        for (int64_t i = 0; i < p.w_size(); ++i)
          if (i % 9 != 0) w[(size_t)i] = 0;
        for (int64_t i = 0; i < p.x_size(); ++i) {
          const int64_t col = (i % p.w + p.pad_w) % 4, row = ((i / p.w) % p.h + p.pad_h) % 4;
          if (col == 0 || col == 3 || row == 0 || row == 3) x[(size_t)i] = 0;
        }
      }
      std::vector<float> u((size_t)winograd_weights_size(p, 2)), y((size_t)p.y_size(), NAN), ref((size_t)p.y_size());
      winograd_weights(p, w.data(), u.data(), 2);
      conv2d_forward_ref_cpu(p, x.data(), w.data(), nullptr, ref.data());
      {
        Bf16Scope bf16;
        conv2d_infer_winograd_cpu(p, x.data(), u.data(), nullptr, ConvEpilogue{}, y.data(), 2);
      }
      const double r = check(adversarial ? "winograd forward, adversarial x" : "winograd forward", y, ref,
                             winograd2_forward_bound(p, absolute(x), absolute(w)),
                             kProduct + 16 * kEps + 4 * kEps * p.c * 9);
      if (adversarial) {  // nonzero where an output has no terms: no multiple of its own sum bounds it
        std::vector<float> own((size_t)p.y_size());
        conv2d_forward_ref_cpu(p, absolute(x).data(), absolute(w).data(), nullptr, own.data());
        size_t termless = 0, nonzero = 0;
        for (size_t i = 0; i < own.size(); ++i)
          if (own[i] == 0.0f) ++termless, nonzero += y[i] != 0.0f;
        CHECK(termless > 0);
        CHECK(nonzero > 0);
      }
      double& acc = adversarial ? worst_adversarial : worst;
      acc = std::max(acc, r);
    }
    ++layers;
  }
  CHECK(layers > 0);
  MESSAGE(layers, " layers: worst error / bound ", worst, " (random x), ", worst_adversarial, " (adversarial x)");
}

TEST_CASE("precision bf16: every dense layer, forward and backward, in bound") {
  if (!bf16_or_skip("bf16 dense layers")) return;
  for (const auto& lc : testing::linear_cases()) {
    LinearShape p = lc.shape;
    p.n = 16;
    CAPTURE(lc.name);
    auto x = random_vector((size_t)p.n * p.in, 51), w = random_vector((size_t)p.out * p.in, 52);
    auto b = random_vector(p.out, 53), dy = random_vector((size_t)p.n * p.out, 54);
    const auto ax = absolute(x), aw = absolute(w), ab = absolute(b), ady = absolute(dy);
    std::vector<float> y_ref((size_t)p.n * p.out), y_bound(y_ref.size()), dx_ref(x.size()), dx_bound(x.size());
    std::vector<float> dw_ref(w.size()), dw_bound(w.size()), db(p.out);
    linear_forward_ref_cpu(p, x.data(), w.data(), b.data(), y_ref.data());
    linear_forward_ref_cpu(p, ax.data(), aw.data(), ab.data(), y_bound.data());
    linear_backward_ref_cpu(p, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db.data());
    linear_backward_ref_cpu(p, ax.data(), aw.data(), ady.data(), dx_bound.data(), dw_bound.data(), db.data());
    std::vector<float> y(y_ref.size()), y32(y_ref.size()), dx(x.size()), dw(w.size());
    linear_forward_cpu(p, x.data(), w.data(), b.data(), y32.data());
    {
      Bf16Scope bf16;
      linear_forward_cpu(p, x.data(), w.data(), b.data(), y.data());
      linear_backward_cpu(p, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
    }
    // gamma_(terms + 1) of fp32 sums on top of the products' rounding.
    auto gamma = [](double terms) { return (terms + 1) * kEps / 2 / (1 - (terms + 1) * kEps / 2); };
    check("forward", y, y_ref, y_bound, kProduct + gamma(p.in) * (1 + kProduct));
    check("backward-input", dx, dx_ref, dx_bound, kProduct + gamma(p.out) * (1 + kProduct));
    check("backward-weight", dw, dw_ref, dw_bound, kProduct + gamma(p.n) * (1 + kProduct));
    if (p.in < kBf16MinReduction)
      CHECK(y == y32);  // too short a reduction for bf16: fp32
    else
      CHECK(y != y32);
  }
}

TEST_CASE("precision bf16: a reduction shorter than kBf16MinReduction runs in fp32, bit for bit") {
  if (!bf16_or_skip("bf16 short reductions")) return;
  const int m = 40, n = 50;
  for (int k : {1, 9, kBf16MinReduction - 1, kBf16MinReduction}) {
    auto a = random_vector((size_t)m * k, 61 + k), b = random_vector((size_t)k * n, 62 + k);
    std::vector<float> c32((size_t)m * n), c((size_t)m * n);
    cpu_gemm(false, false, m, n, k, a.data(), k, b.data(), n, 0.0f, c32.data(), n);
    {
      Bf16Scope bf16;
      cpu_gemm(false, false, m, n, k, a.data(), k, b.data(), n, 0.0f, c.data(), n);
    }
    CAPTURE(k);
    if (k < kBf16MinReduction)
      CHECK(c == c32);
    else
      CHECK(c != c32);  // from the threshold on, the product is bf16's
  }
}

TEST_CASE("precision bf16: Winograd filters prepared once give the per-call result, bit for bit") {
  if (!bf16_or_skip("bf16 prepared Winograd filters")) return;
  int prepared = 0;
  for (const auto& cs : testing::conv_cases()) {
    Conv2dShape p = cs.shape;
    if (!winograd_supported(p)) continue;
    p.n = 3;
    CAPTURE(cs.name);
    auto x = random_vector(p.x_size(), 71), w = random_vector(p.w_size(), 72), b = random_vector(p.k, 73);
    std::vector<float> u((size_t)winograd_weights_size(p, 2));
    winograd_weights(p, w.data(), u.data(), 2);
    ConvEpilogue e;
    e.relu = true;
    Bf16Scope bf16;
    const auto ub = winograd_weights_bf16(p, u.data());
    CHECK((ub != nullptr) == (p.c >= kBf16MinReduction));  // none for the first layer
    std::vector<float> y1((size_t)e.y_size(p)), y2((size_t)e.y_size(p), NAN);
    conv2d_infer_winograd_cpu(p, x.data(), u.data(), b.data(), e, y1.data(), 2);
    conv2d_infer_winograd_cpu(p, x.data(), u.data(), b.data(), e, y2.data(), 2, ub.get());
    CHECK(y1 == y2);
    prepared += ub != nullptr;
  }
  CHECK(prepared > 0);
}

namespace {

// Both networks' layers and the edge shapes (kernels/cpu/conv2d_bf16_direct.h) of the direct cases.
std::vector<testing::ConvCase> direct_shapes() {
  auto shapes = testing::conv_cases();
  shapes.push_back({"edge 3x3 40->70 9x37 pad0", testing::conv_shape(40, 9, 37, 70, 3, 3, 0, 1), false});
  shapes.push_back({"edge 5x5 33->17 11x11 pad2", testing::conv_shape(33, 11, 11, 17, 5, 5, 2, 1), false});
  shapes.push_back({"edge 3x3 17->19 1x50 pad1", testing::conv_shape(17, 1, 50, 19, 3, 3, 1, 1), false});
  return shapes;
}

}  // namespace

TEST_CASE("precision bf16: the direct convolution is within the direct sum's bound on every layer, each kernel") {
  // conv2d_forward_bf16_direct (kernels/cpu/conv2d_bf16_direct.h): bf16 operands, fp32 sums in
  // (tap, channel) order on both kernels: |err| <= ((1+u)^2 - 1 + gamma_(C R S + 1)) sum |w x|
  // (bias added exactly after).
  if (!bf16_or_skip("direct bf16 convolution")) return;  // Bf16Scope throws on a CPU without bf16
  Bf16Scope bf16_scope;
  testing::for_each_bf16_kernel("direct bf16 convolution", [&] {
    int ran = 0;
    double worst = 0;
    auto shapes = direct_shapes();
    // Small images take the VDPBF16PS kernel with output channels across lanes (kvec: positions
    // in blocks of 6, K in blocks of 64; the network layers of 12 x 12 and less take it too):
    // K and the positions off those blocks, an odd C.
    shapes.push_back({"edge 3x3 21->100 4x4 pad1", testing::conv_shape(21, 4, 4, 100, 3, 3, 1, 1), false});
    for (const auto& cs : shapes) {
      Conv2dShape p = cs.shape;
      p.n = 3;
      CAPTURE(cs.name);
      auto x = random_vector(p.x_size(), 81), w = random_vector(p.w_size(), 82), b = random_vector(p.k, 83);
      std::vector<float> y((size_t)p.y_size(), NAN), ref(y.size()), bound(y.size());
      const bool applies = p.stride_h == 1 && p.stride_w == 1 && p.c >= kBf16MinReduction && p.k >= 16;
      for (bool relu : {false, true}) {
        CHECK(conv2d_forward_bf16_direct(p, x.data(), w.data(), b.data(), relu, y.data()) == applies);
        if (!applies) continue;
        conv2d_forward_ref_cpu(p, x.data(), w.data(), b.data(), ref.data());
        conv2d_forward_ref_cpu(p, absolute(x).data(), absolute(w).data(), nullptr, bound.data());
        if (relu)
          for (float& v : ref) v = std::max(v, 0.0f);
        const double terms = (double)p.c * p.r * p.s;
        const double gamma = (terms + 1) * kEps / 2 / (1 - (terms + 1) * kEps / 2);
        worst = std::max(worst, check(relu ? "direct conv + relu" : "direct conv", y, ref, bound,
                                      kProduct + gamma * (1 + kProduct) + 2 * kEps));  // + the bias add
        ++ran;
      }
    }
    MESSAGE("direct bf16 convolution on ", std::string(bf16_kernel_name(gemm_bf16_kernel())), ": worst error / bound ", worst);
    CHECK(ran > 0);
  });
}

TEST_CASE("precision bf16: the direct convolution's prepared filters, affine and one-image split keep its result") {
  // What the inference graph adds to the direct forward (layers/inference.cpp): filters packed once
  // (bit for bit the per-call packing's result), BatchNorm's affine after the ReLU (y * scale +
  // shift in fp32: two roundings, so within eps (|y scale| + |shift|) of the exact value of the
  // unaffined result's), and one image split over the workers by blocks of output channels
  // (each block computed as with more images: bit for bit the 3-image call's first image).
  if (!bf16_or_skip("direct bf16 convolution, prepared")) return;  // Bf16Scope throws on a CPU without bf16
  Bf16Scope bf16_scope;
  testing::for_each_bf16_kernel("direct bf16 convolution, prepared", [&] {
    int ran = 0;
    for (const auto& cs : direct_shapes()) {
      Conv2dShape p = cs.shape;
      p.n = 3;
      CAPTURE(cs.name);
      if (!conv2d_bf16_direct_applies(p)) continue;
      auto x = random_vector(p.x_size(), 91), w = random_vector(p.w_size(), 92), b = random_vector(p.k, 93);
      auto scale = random_vector(p.k, 94), shift = random_vector(p.k, 95);
      const auto prepared = conv2d_bf16_direct_filters(p, w.data());
      REQUIRE(prepared != nullptr);
      std::vector<float> y((size_t)p.y_size(), NAN), yp(y.size(), NAN), ya(y.size(), NAN);
      REQUIRE(conv2d_forward_bf16_direct(p, x.data(), w.data(), b.data(), true, y.data()));
      REQUIRE(conv2d_forward_bf16_direct(p, x.data(), w.data(), b.data(), true, yp.data(), prepared.get()));
      CHECK(std::memcmp(y.data(), yp.data(), y.size() * sizeof(float)) == 0);
      REQUIRE(conv2d_forward_bf16_direct(p, x.data(), w.data(), b.data(), true, ya.data(), prepared.get(),
                                         scale.data(), shift.data()));
      const int64_t plane = (int64_t)p.out_h() * p.out_w();
      int64_t off = 0;
      for (size_t i = 0; i < y.size(); ++i) {
        const int k = (int)((int64_t)i / plane % p.k);
        const double exact = (double)y[i] * scale[(size_t)k] + shift[(size_t)k];
        const double allowed = kEps * (std::fabs((double)y[i] * scale[(size_t)k]) + std::fabs(shift[(size_t)k]));
        off += std::fabs(ya[i] - exact) > allowed;
      }
      CHECK(off == 0);
      Conv2dShape one = p;
      one.n = 1;
      std::vector<float> y1((size_t)one.y_size(), NAN);
      REQUIRE(conv2d_forward_bf16_direct(one, x.data(), w.data(), b.data(), true, y1.data(), prepared.get()));
      CHECK(std::memcmp(y1.data(), y.data(), y1.size() * sizeof(float)) == 0);
      ++ran;
    }
    CHECK(ran > 0);
  });
}

TEST_CASE("precision bf16: the direct backward-weight is within the direct sum's bound on every layer, each kernel") {
  // conv2d_backward_weight_bf16_direct (kernels/cpu/conv2d_bf16_direct.h): bf16 operands, fp32
  // sums over the N OH OW positions (then the workers' partials), on AMX tiles where the kernel is
  // amx and C a multiple of 16, else VDPBF16PS:
  // |err| <= ((1+u)^2 - 1 + gamma_(N OH OW + threads)) sum |dy x|.
  if (!bf16_or_skip("direct bf16 backward-weight")) return;  // Bf16Scope throws on a CPU without bf16
  Bf16Scope bf16_scope;
  testing::for_each_bf16_kernel("direct bf16 backward-weight", [&] {
    int ran = 0;
    double worst = 0;
    // K off the 64-lane blocks (48, 32 and 16 wide last blocks, K past the lanes), odd C, odd and
    // even output widths, 5x5 and 1x3 filters, a one-row image, strides the form refuses.
    auto shapes = direct_shapes();
    shapes.push_back({"edge 3x3 21->112 4x4 pad1", testing::conv_shape(21, 4, 4, 112, 3, 3, 1, 1), false});
    shapes.push_back({"edge 3x3 3->96 7x7 pad0", testing::conv_shape(3, 7, 7, 96, 3, 3, 0, 1), false});
    // The amx form (C a multiple of 16): a last block of 16 channels and of 16 lanes, K past the
    // lanes, 5x5 and 1x3 filters, no padding, small images packed several to a group (odd spans).
    shapes.push_back({"amx 3x3 48->80 10x13 pad1", testing::conv_shape(48, 10, 13, 80, 3, 3, 1, 1), false});
    shapes.push_back({"amx 5x5 32->17 11x11 pad2", testing::conv_shape(32, 11, 11, 17, 5, 5, 2, 1), false});
    shapes.push_back({"amx 1x3 16->24 9x37 pad0", testing::conv_shape(16, 9, 37, 24, 1, 3, 0, 1), false});
    shapes.push_back({"amx 3x3 16->16 5x5 pad1", testing::conv_shape(16, 5, 5, 16, 3, 3, 1, 1), false});
    int on_amx = 0;
    double worst_amx = 0;
    for (int n : {1, 3}) {
      for (const auto& cs : shapes) {
        Conv2dShape p = cs.shape;
        p.n = n;
        CAPTURE(cs.name);
        CAPTURE(n);
        auto x = random_vector(p.x_size(), 71), dy = random_vector(p.y_size(), 72);
        std::vector<float> dw((size_t)p.w_size(), NAN), ref(dw.size()), bound(dw.size()), db(p.k), got_db(p.k, NAN);
        const int64_t terms = (int64_t)p.n * p.out_h() * p.out_w();
        const bool applies = p.stride_h == 1 && p.stride_w == 1 && terms >= kBf16MinReduction;
        CHECK(conv2d_bf16_direct_weight_applies(p) == applies);
        on_amx += conv2d_bf16_direct_weight_on_amx(p);
        CHECK(conv2d_bf16_direct_weight_on_amx(p) ==
              (applies && gemm_bf16_kernel() == Bf16Kernel::amx && p.c % 16 == 0));
        CHECK(conv2d_backward_weight_bf16_direct(p, x.data(), dy.data(), dw.data(), got_db.data()) == applies);
        if (!applies) {
          CHECK(std::isnan(dw[0]));  // nothing written
          continue;
        }
        CHECK(std::string(conv2d_cpu_forms(p).backward_weight) == "direct-bf16");
        conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), ref.data(), db.data());
        conv2d_backward_weight_ref_cpu(p, absolute(x).data(), absolute(dy).data(), bound.data(), db.data());
        const double sums = (double)terms + omp_get_max_threads();
        const double gamma = sums * kEps / 2 / (1 - sums * kEps / 2);
        // The reference's own fp32 rounding: the parity tests' 4 eps per term.
        const double ratio = check("direct backward-weight", dw, ref, bound, kProduct + gamma * (1 + kProduct) +
                                                                                4 * kEps * terms);
        worst = std::max(worst, ratio);
        if (conv2d_bf16_direct_weight_on_amx(p)) worst_amx = std::max(worst_amx, ratio);
        // The bias gradient stays fp32 data summed in double: within the final rounding to float
        // (eps / 2 of |db|) plus the double sum's own error (N OH OW 2^-53 of sum |dy|, below
        // eps / 2 of it for fewer than 2^29 terms), so eps of sum |dy|.
        for (int k = 0; k < p.k; ++k) {
          double exact = 0, mag = 0;
          for (int n2 = 0; n2 < p.n; ++n2)
            for (int64_t i = 0; i < (int64_t)p.out_h() * p.out_w(); ++i) {
              const double v = dy[(size_t)(((int64_t)n2 * p.k + k) * p.out_h() * p.out_w() + i)];
              exact += v, mag += std::fabs(v);
            }
          CHECK(std::fabs(got_db[(size_t)k] - exact) <= kEps * mag);
        }
        ++ran;
      }
    }
    const bool amx = gemm_bf16_kernel() == Bf16Kernel::amx;
    MESSAGE("direct bf16 backward-weight on ", std::string(bf16_kernel_name(gemm_bf16_kernel())),
            ": worst error / bound ", worst, "; ", on_amx, " shapes in the amx form, worst ", worst_amx);
    CHECK(ran > 0);
    CHECK((on_amx > 0) == amx);  // the network layers past the first have C a multiple of 16
  });
}
