// Autograd through the engine: finite-difference gradient checks of every op in engine/ops.h in
// float32 (the kernels' own double-precision checks live in test_<op>.cpp; here we check the
// wiring: the right gradient reaches the right input, with its shape, and accumulates), the
// tape's accumulation rules, the no-grad guard, and the errors users see.
//
// Method: for an op y = f(inputs), the test loss is L = <y, R> with a fixed random R of y's shape,
// evaluated on the host in double. run_backward(y, R) then leaves dL/dinput in each input's .grad,
// and central differences (L(x + h e_j) - L(x - h e_j)) / 2h give the same numbers.
// Step sizes: ops that are linear in the perturbed input (conv2d, linear, add, mul, scale,
// reshape, dropout with a fixed mask) and the quadratic l2_penalty have an exact central
// difference for any h, so h is large (0.5) and only float32 rounding of the forward remains.
// Piecewise-linear ops (relu, max_pool2d) are exact too as long as x +- h stays on one piece: the
// inputs keep a margin > 2h from kinks and ties. Smooth nonlinear ops (batch_norm, cross-entropy)
// use h = 1e-2: truncation error h^2/6 |f'''| ~ 2e-5, rounding ~ 1e-6 |L| / 2h ~ 1e-4 at worst.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <functional>
#include <numeric>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "kernels/philox.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::contains;
using emotune::testing::error_of;

namespace {

Tensor rand_tensor(const Shape& s, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  return Tensor::from_vector(s, random_vector((size_t)shape_numel(s), seed, lo, hi));
}

double dot(const Tensor& y, const std::vector<float>& r) {
  std::vector<float> v = y.to_vector();
  REQUIRE(v.size() == r.size());
  double s = 0;
  for (size_t i = 0; i < v.size(); ++i) s += (double)v[i] * r[i];
  return s;
}

struct Tol {
  double h, atol, rtol;
};

// Checks d<f(inputs), R>/d inputs[i] for every i in `check` against central differences.
// `f` must be deterministic (dropout: fixed seed and offset).
void gradcheck(const char* what, std::vector<Tensor> inputs, const std::vector<int>& check,
               const std::function<Tensor(const std::vector<Tensor>&)>& f, Tol tol,
               uint64_t seed = 99) {
  INFO(std::string(what));
  for (int i : check) inputs[i].set_requires_grad(true);
  Tensor y = f(inputs);
  REQUIRE(y.requires_grad());
  REQUIRE(y.grad_fn() != nullptr);
  std::vector<float> r = random_vector((size_t)y.numel(), seed, -1.0f, 1.0f);
  run_backward(y, Tensor::from_vector(y.shape(), r));

  for (int i : check) {
    INFO("input " << i << " of shape " << shape_str(inputs[i].shape()));
    Tensor g = inputs[i].grad();
    REQUIRE(g.defined());
    CHECK(g.shape() == inputs[i].shape());
    std::vector<float> analytic = g.to_vector();
    std::vector<float> numeric(analytic.size());
    float* x = inputs[i].data();
    NoGradGuard no_grad;
    for (size_t j = 0; j < numeric.size(); ++j) {
      const float keep = x[j];
      x[j] = keep + (float)tol.h;
      const double lp = dot(f(inputs), r);
      x[j] = keep - (float)tol.h;
      const double lm = dot(f(inputs), r);
      x[j] = keep;
      numeric[j] = (float)((lp - lm) / (2 * tol.h));
    }
    EMOTUNE_CHECK_CLOSE(allclose(analytic, numeric, tol.atol, tol.rtol));
    if (std::getenv("EMOTUNE_GRADCHECK_VERBOSE")) {  // to see how far below the tolerance we are
      double worst = 0, gmax = 0;
      for (size_t j = 0; j < numeric.size(); ++j) {
        worst = std::max(worst, (double)std::fabs(analytic[j] - numeric[j]));
        gmax = std::max(gmax, (double)std::fabs(numeric[j]));
      }
      MESSAGE(std::string(what) << " input " << i << ": max |analytic - numeric| " << worst << ", max |grad| " << gmax);
    }
  }
}

// Values in [-n*spacing/2, n*spacing/2) spaced `spacing` apart in a seeded random order, none
// within spacing/2 of zero: no ties for max_pool2d and no relu kinks within +- spacing/2.
Tensor spaced_tensor(const Shape& s, float spacing, uint64_t seed) {
  size_t n = (size_t)shape_numel(s);
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), 0);
  for (size_t i = n; i > 1; --i) {  // Fisher-Yates with Philox
    size_t j = philox4x32(i, 1, seed).v[0] % i;
    std::swap(idx[i - 1], idx[j]);
  }
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = ((float)idx[i] - (float)n / 2 + 0.5f) * spacing;
  return Tensor::from_vector(s, v);
}

// Linear ops: central differences are exact; what remains is float32 rounding of a forward pass
// whose terms are O(1): a few 1e-6 relative, hence 1e-4 absolute / relative leaves a wide margin
// while a wiring error (wrong input, missing term, transposition) is O(1).
constexpr Tol kLinear{0.5, 1e-4, 1e-4};

}  // namespace

// ------------------------------------------------------------------ per-op gradient checks

TEST_CASE("gradcheck conv2d: stride 1 pad 0, stride 2 pad 1, 1x1, with and without bias") {
  // Linear in x, w and b (exact central differences); sums of up to C*R*S = 27 products, whose
  // float rounding was ~2e-6 at worst here: kLinear's 1e-4 keeps a 50x margin.
  const Tol tol = kLinear;
  struct Case { Shape x, w; int stride, pad; bool bias; };
  const Case cases[] = {
      {{2, 3, 6, 5}, {4, 3, 3, 3}, 1, 0, true},
      {{2, 3, 7, 6}, {4, 3, 3, 3}, 2, 1, true},
      {{1, 2, 5, 5}, {3, 2, 3, 3}, 1, 1, false},  // Keras "same"
      {{2, 4, 4, 4}, {2, 4, 1, 1}, 1, 0, true},
      {{1, 1, 7, 7}, {2, 1, 5, 3}, 2, 2, true},   // non-square kernel, first-layer shape
  };
  uint64_t seed = 10;
  for (const Case& c : cases) {
    std::vector<Tensor> in = {rand_tensor(c.x, seed++), rand_tensor(c.w, seed++),
                              c.bias ? rand_tensor({c.w[0]}, seed++) : Tensor()};
    std::vector<int> check = {0, 1};
    if (c.bias) check.push_back(2);
    std::string what = "conv2d x " + shape_str(c.x) + " w " + shape_str(c.w) + " stride " +
                       std::to_string(c.stride) + " pad " + std::to_string(c.pad);
    gradcheck(what.c_str(), in, check,
              [&](const std::vector<Tensor>& t) { return ops::conv2d(t[0], t[1], t[2], c.stride, c.pad); },
              tol, seed++);
  }
}

TEST_CASE("conv2d: output shapes and Keras padding names") {
  Tensor x = Tensor::zeros({2, 3, 48, 48}), w = Tensor::zeros({8, 3, 3, 3}), b = Tensor::zeros({8});
  CHECK(ops::conv2d(x, w, b, 1, ops::conv2d_padding("same", 3, 1)).shape() == Shape{2, 8, 48, 48});
  CHECK(ops::conv2d(x, w, b, 1, ops::conv2d_padding("valid", 3, 1)).shape() == Shape{2, 8, 46, 46});
  CHECK(ops::conv2d(x, w, b, 2, 1).shape() == Shape{2, 8, 24, 24});
  CHECK(ops::conv2d_padding("same", 5, 1) == 2);
  CHECK(contains(error_of([] { (void)ops::conv2d_padding("full", 3, 1); }), "full"));
  CHECK(contains(error_of([] { (void)ops::conv2d_padding("same", 4, 1); }), "kernel 4"));
}

TEST_CASE("gradcheck conv2d: only the inputs that require grad get one") {
  Tensor x = rand_tensor({1, 2, 5, 5}, 1), w = rand_tensor({3, 2, 3, 3}, 2), b = rand_tensor({3}, 3);
  w.set_requires_grad(true);
  Tensor y = ops::conv2d(x, w, b, 1, 1);
  run_backward(y, Tensor::full(y.shape(), 1.0f));
  CHECK_FALSE(x.grad().defined());
  CHECK(w.grad().defined());
  CHECK_FALSE(b.grad().defined());
}

TEST_CASE("gradcheck max_pool2d: 2x2 stride 2, overlapping 3x3 stride 2, odd sizes") {
  // Inputs spaced 0.05 apart (no ties, margin 0.025 > h): the op is linear around them.
  const Tol tol{0.01, 1e-4, 1e-4};
  struct Case { Shape x; int k, s; };
  const Case cases[] = {{{2, 3, 6, 6}, 2, 2}, {{1, 2, 7, 7}, 3, 2}, {{2, 2, 5, 5}, 2, 2}};
  uint64_t seed = 40;
  for (const Case& c : cases) {
    std::string what = "max_pool2d " + shape_str(c.x) + " k " + std::to_string(c.k);
    gradcheck(what.c_str(), {spaced_tensor(c.x, 0.05f, seed++)}, {0},
              [&](const std::vector<Tensor>& t) { return ops::max_pool2d(t[0], c.k, c.s); }, tol, seed++);
  }
  CHECK(ops::max_pool2d(Tensor::zeros({1, 1, 5, 5}), 2, 2).shape() == Shape{1, 1, 2, 2});
  CHECK(contains(error_of([] { (void)ops::max_pool2d(Tensor::zeros({1, 1, 1, 4}), 2, 2); }), "[1, 1, 1, 4]"));
}

TEST_CASE("gradcheck batch_norm training: 4-d and 2-d inputs, x, gamma and beta") {
  // Smooth and nonlinear in x: h = 1e-2 (see the file comment). Normalised outputs are O(1) and
  // 1/sigma amplifies rounding a little: atol 5e-4, rtol 1e-3 is ~20x above the worst difference
  // seen here (2.5e-5 on gradients of magnitude ~1) and far below a wiring error (O(1)).
  const Tol tol{1e-2, 5e-4, 1e-3};
  struct Case { Shape x; };
  const Case cases[] = {{{4, 3, 3, 3}}, {{8, 5}}, {{2, 2, 4, 1}}};
  uint64_t seed = 60;
  for (const Case& c : cases) {
    int64_t ch = c.x[1];
    Tensor rm = Tensor::zeros({ch}), rv = Tensor::full({ch}, 1.0f);
    std::vector<Tensor> in = {rand_tensor(c.x, seed++, -2.0f, 2.0f), rand_tensor({ch}, seed++, 0.5f, 1.5f),
                              rand_tensor({ch}, seed++)};
    std::string what = "batch_norm " + shape_str(c.x);
    gradcheck(what.c_str(), in, {0, 1, 2},
              [&](const std::vector<Tensor>& t) {
                return ops::batch_norm(t[0], t[1], t[2], rm, rv, true, 0.1f, 1e-3f);
              },
              tol, seed++);
  }
}

TEST_CASE("gradcheck batch_norm eval: the input gradient through the running statistics") {
  // Linear in x (per channel x s + t): the central difference is exact for any h, so h = 0.5 and
  // only float32 rounding of the forward remains (~1e-6 |L| / 2h); atol 1e-4 is ~20x above it and
  // far below a wiring error (a missing gamma or invstd changes the gradient by O(1)).
  const Tol tol{0.5, 1e-4, 1e-4};
  uint64_t seed = 160;
  for (const Shape& xs : {Shape{3, 4, 3, 2}, Shape{5, 6}}) {
    const int64_t ch = xs[1];
    Tensor rm = rand_tensor({ch}, seed++), rv = rand_tensor({ch}, seed++, 0.2f, 3.0f);
    Tensor gamma = rand_tensor({ch}, seed++, -1.5f, 1.5f), beta = rand_tensor({ch}, seed++);
    std::string what = "batch_norm eval " + shape_str(xs);
    gradcheck(what.c_str(), {rand_tensor(xs, seed++, -2.0f, 2.0f)}, {0},
              [&](const std::vector<Tensor>& t) {
                return ops::batch_norm(t[0], gamma, beta, rm, rv, false, 0.1f, 1e-3f);
              },
              tol, seed++);
  }
}

TEST_CASE("batch_norm: training normalises with batch statistics and moves the running ones") {
  // x [N=4, C=1, 1, 2]: values 1..8; mean 4.5, biased var 5.25, unbiased 6.
  Tensor x = Tensor::from_vector({4, 1, 1, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor g = Tensor::full({1}, 2.0f), b = Tensor::full({1}, 0.5f);
  Tensor rm = Tensor::zeros({1}), rv = Tensor::full({1}, 1.0f);
  Tensor y = ops::batch_norm(x, g, b, rm, rv, true, 0.1f, 0.0f);
  std::vector<float> want(8);
  for (int i = 0; i < 8; ++i) want[i] = 2.0f * ((float)(i + 1) - 4.5f) / std::sqrt(5.25f) + 0.5f;
  // float32 normalisation of O(1) values: a few ulp.
  EMOTUNE_CHECK_CLOSE(allclose(y.to_vector(), want, 1e-5, 1e-5));
  CHECK(rm.item() == doctest::Approx(0.45).epsilon(1e-6));         // 0.9*0 + 0.1*4.5
  CHECK(rv.item() == doctest::Approx(0.9 + 0.6).epsilon(1e-6));   // 0.9*1 + 0.1*6 (unbiased)
  // eval uses the running statistics: (x - 0.45) / sqrt(1.5) * 2 + 0.5
  Tensor ye = ops::batch_norm(x, g, b, rm, rv, false, 0.1f, 0.0f);
  for (int i = 0; i < 8; ++i) want[i] = 2.0f * ((float)(i + 1) - 0.45f) / std::sqrt(1.5f) + 0.5f;
  EMOTUNE_CHECK_CLOSE(allclose(ye.to_vector(), want, 1e-5, 1e-5));
  CHECK(rm.item() == doctest::Approx(0.45).epsilon(1e-6));  // eval leaves them alone
}

TEST_CASE("gradcheck dropout: the same seed gives the same mask in forward, backward and FD") {
  const float p = 0.4f;
  Tensor x = rand_tensor({3, 50}, 80);
  gradcheck("dropout", {x}, {0},
            [&](const std::vector<Tensor>& t) { return ops::dropout(t[0], p, true, 1234, 77); }, kLinear);
  // The mask is really applied (not the identity), scaled by 1/(1-p), and reproducible.
  std::vector<float> xv = x.to_vector(), a, b;
  {
    NoGradGuard ng;
    a = ops::dropout(x, p, true, 1234, 77).to_vector();
    b = ops::dropout(x, p, true, 1234, 77).to_vector();
  }
  CHECK(a == b);
  int dropped = 0;
  const float scale = 1.0f / (1.0f - p);  // the kernel's exact expression (kernels/cpu/dropout.cpp)
  for (size_t i = 0; i < a.size(); ++i) {
    bool keep = philox_uniform(1234, 77 + i) >= p;  // kernels/dropout.h's rule
    if (!keep) ++dropped;
    CHECK(a[i] == (keep ? xv[i] * scale : 0.0f));
  }
  CHECK(dropped > 30);   // ~60 of 150 expected; a binomial tail below 30 is ~1e-5
  CHECK(dropped < 90);
  std::vector<float> c = ops::dropout(x, p, true, 1235, 77).to_vector();
  CHECK(c != a);  // another seed, another mask
  // eval mode and p = 0 are the identity (the very same tensor)
  CHECK(ops::dropout(x, p, false, 1234, 77).same(x));
  CHECK(ops::dropout(x, 0.0f, true, 1234, 77).same(x));
  CHECK(contains(error_of([&] { (void)ops::dropout(x, 1.0f, true, 1, 0); }), "rate"));
}

TEST_CASE("gradcheck relu away from the kink") {
  const Tol tol{0.01, 1e-5, 1e-5};  // exact pieces; O(1) values, float rounding only
  gradcheck("relu", {spaced_tensor({2, 3, 4, 5}, 0.05f, 90)}, {0},
            [](const std::vector<Tensor>& t) { return ops::relu(t[0]); }, tol);
}

TEST_CASE("gradcheck linear: x, w and b; and without bias") {
  // Sums of 7 products of O(1) values.
  gradcheck("linear", {rand_tensor({5, 7}, 100), rand_tensor({4, 7}, 101), rand_tensor({4}, 102)},
            {0, 1, 2}, [](const std::vector<Tensor>& t) { return ops::linear(t[0], t[1], t[2]); },
            kLinear);
  gradcheck("linear no bias", {rand_tensor({3, 6}, 103), rand_tensor({2, 6}, 104), Tensor()}, {0, 1},
            [](const std::vector<Tensor>& t) { return ops::linear(t[0], t[1], t[2]); }, kLinear);
  // only w requires grad: x gets none
  Tensor x = rand_tensor({3, 6}, 105), w = rand_tensor({2, 6}, 106);
  w.set_requires_grad(true);
  run_backward(ops::linear(x, w, Tensor()), Tensor::full({3, 2}, 1.0f));
  CHECK_FALSE(x.grad().defined());
  CHECK(w.grad().shape() == Shape{2, 6});
}

TEST_CASE("gradcheck add, mul, scale") {
  gradcheck("add", {rand_tensor({3, 4}, 110), rand_tensor({3, 4}, 111)}, {0, 1},
            [](const std::vector<Tensor>& t) { return ops::add(t[0], t[1]); }, kLinear);
  // mul: da = g*b, db = g*a; distinct random a and b catch a swap.
  gradcheck("mul", {rand_tensor({3, 4}, 112), rand_tensor({3, 4}, 113)}, {0, 1},
            [](const std::vector<Tensor>& t) { return ops::mul(t[0], t[1]); }, kLinear);
  gradcheck("scale", {rand_tensor({2, 5}, 114)}, {0},
            [](const std::vector<Tensor>& t) { return ops::scale(t[0], -1.75f); }, kLinear);
  // only one side requires grad
  Tensor a = rand_tensor({4}, 115), b = rand_tensor({4}, 116);
  b.set_requires_grad(true);
  run_backward(ops::mul(a, b), Tensor::full({4}, 1.0f));
  CHECK_FALSE(a.grad().defined());
  CHECK(b.grad().to_vector() == a.to_vector());  // exact: 1 * a
}

TEST_CASE("gradcheck reshape and flatten: the gradient comes back in the input's shape") {
  gradcheck("reshape", {rand_tensor({2, 3, 4}, 120)}, {0},
            [](const std::vector<Tensor>& t) { return ops::reshape(t[0], {4, 6}); }, kLinear);
  gradcheck("flatten", {rand_tensor({2, 3, 2, 2}, 121)}, {0},
            [](const std::vector<Tensor>& t) { return ops::flatten(t[0]); }, kLinear);
  // reshape then a real op: the gradient crosses the view
  gradcheck("flatten -> linear", {rand_tensor({2, 2, 3, 3}, 122), rand_tensor({5, 18}, 123)}, {0, 1},
            [](const std::vector<Tensor>& t) { return ops::linear(ops::flatten(t[0]), t[1], Tensor()); },
            {0.5, 1e-3, 1e-3});  // 18-term sums
  CHECK(contains(error_of([] { (void)ops::reshape(Tensor::zeros({2, 3}), {4}); }), "[2, 3]"));
}

TEST_CASE("gradcheck softmax_cross_entropy: class weights, label smoothing, soft targets") {
  const int n = 5, c = 4;
  // Soft targets: rows of positive values normalised to 1 (FER+ vote distributions).
  std::vector<float> t = random_vector(n * c, 130, 0.05f, 1.0f);
  for (int i = 0; i < n; ++i) {
    float s = 0;
    for (int k = 0; k < c; ++k) s += t[i * c + k];
    for (int k = 0; k < c; ++k) t[i * c + k] /= s;
  }
  Tensor targets = Tensor::from_vector({n, c}, t);
  Tensor weights = Tensor::from_vector({c}, {0.5f, 2.0f, 1.0f, 3.0f});
  // Smooth in the logits; the loss is a [1] tensor seeded with a random upstream value, so the
  // upstream gradient's scaling (scale_dev) is checked too. Gradients are O(0.1); the worst
  // difference seen was 7e-6, so atol 1e-4 + rtol 1e-3 is a 15x margin and ~1000x below a wiring
  // error (a missing weight, smoothing or upstream factor changes gradients by O(0.1)).
  const Tol tol{1e-2, 1e-4, 1e-3};
  for (float smoothing : {0.0f, 0.1f}) {
    for (bool weighted : {false, true}) {
      std::string what = std::string("cross-entropy smoothing ") + std::to_string(smoothing) +
                         (weighted ? " weighted" : "");
      gradcheck(what.c_str(), {rand_tensor({n, c}, 131, -2.0f, 2.0f)}, {0},
                [&](const std::vector<Tensor>& in) {
                  return ops::softmax_cross_entropy(in[0], targets, weighted ? weights : Tensor(), smoothing);
                },
                tol, 132);
    }
  }
  // The targets get no gradient even when they require one (documented: logits only).
  Tensor logits = rand_tensor({n, c}, 133);
  logits.set_requires_grad(true);
  Tensor tg = targets.clone();
  tg.set_requires_grad(true);
  ops::softmax_cross_entropy(logits, tg, Tensor(), 0.0f).backward();
  CHECK(logits.grad().defined());
  CHECK_FALSE(tg.grad().defined());
}

TEST_CASE("softmax_cross_entropy: value against a hand computation") {
  // One row, logits (0, ln 2, ln 4): softmax (1/7, 2/7, 4/7); one-hot target class 1:
  // loss = -ln(2/7). With smoothing 0.3 over 3 classes: t' = (0.1, 0.8, 0.1).
  Tensor z = Tensor::from_vector({1, 3}, {0.0f, std::log(2.0f), std::log(4.0f)});
  Tensor t = Tensor::from_vector({1, 3}, {0, 1, 0});
  // float32 log-softmax of O(1) values: ~1e-7 relative.
  CHECK(ops::softmax_cross_entropy(z, t, Tensor(), 0.0f).item() ==
        doctest::Approx(-std::log(2.0 / 7.0)).epsilon(1e-6));
  double want = -(0.1 * std::log(1.0 / 7) + 0.8 * std::log(2.0 / 7) + 0.1 * std::log(4.0 / 7));
  CHECK(ops::softmax_cross_entropy(z, t, Tensor(), 0.3f).item() == doctest::Approx(want).epsilon(1e-6));
  // Weighted mean over two rows (PyTorch's convention): (w1 l1 + w2 l2) / (w1 + w2).
  Tensor z2 = Tensor::from_vector({2, 3}, {0.0f, std::log(2.0f), std::log(4.0f), 0, 0, 0});
  Tensor t2 = Tensor::from_vector({2, 3}, {0, 1, 0, 0, 0, 1});
  Tensor w = Tensor::from_vector({3}, {1.0f, 3.0f, 0.5f});
  double l1 = -std::log(2.0 / 7), l2 = -std::log(1.0 / 3);
  CHECK(ops::softmax_cross_entropy(z2, t2, w, 0.0f).item() ==
        doctest::Approx((3 * l1 + 0.5 * l2) / 3.5).epsilon(1e-6));
}

TEST_CASE("gradcheck l2_penalty and its value") {
  Tensor w = rand_tensor({6, 5}, 140);
  // Quadratic: central differences are exact; the penalty sums 30 O(1e-2) terms in float.
  gradcheck("l2_penalty", {w}, {0},
            [](const std::vector<Tensor>& t) { return ops::l2_penalty(t[0], 0.01f); }, {0.25, 1e-5, 1e-4});
  double s = 0;
  for (float v : w.to_vector()) s += (double)v * v;
  // float accumulation of 30 squares: ~1e-6 relative.
  CHECK(ops::l2_penalty(w, 0.001f).item() == doctest::Approx(0.001 * s).epsilon(1e-5));
}

TEST_CASE("gradcheck a small network end to end: conv, bn, relu, pool, flatten, linear, loss + l2") {
  // Composition: gradients cross several nodes and sum at the weights used twice (w2 in the loss
  // and in the penalty). ReLU and max-pool kinks are avoided by checking the smooth-ish inputs
  // only with a small h: h = 1e-3 keeps the chance that a perturbation crosses a kink tiny (the
  // seeds are fixed, so this is decided once), and float rounding of a 5-op forward is
  // ~1e-7 |L| / 2h ~ 1e-4: the worst difference seen was 1.9e-4 on O(0.5) gradients, so
  // atol 2e-3 + rtol 2e-3 is a ~10x margin; a wiring error is O(0.1) or more.
  Tensor x = rand_tensor({4, 2, 6, 6}, 150);
  Tensor targets = Tensor::zeros({4, 3});
  for (int i = 0; i < 4; ++i) targets.data()[i * 3 + i % 3] = 1.0f;
  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0f);
  auto f = [&](const std::vector<Tensor>& t) {
    Tensor y = ops::conv2d(x, t[0], t[1], 1, 1);
    y = ops::batch_norm(y, t[2], t[3], rm, rv, true, 0.1f, 1e-3f);
    y = ops::relu(y);
    y = ops::max_pool2d(y, 2, 2);
    y = ops::linear(ops::flatten(y), t[4], t[5]);
    Tensor loss = ops::softmax_cross_entropy(y, targets, Tensor(), 0.1f);
    return ops::add(loss, ops::l2_penalty(t[4], 0.05f));
  };
  std::vector<Tensor> in = {rand_tensor({3, 2, 3, 3}, 151), rand_tensor({3}, 152),
                            rand_tensor({3}, 153, 0.5f, 1.5f), rand_tensor({3}, 154),
                            rand_tensor({3, 27}, 155), rand_tensor({3}, 156)};
  gradcheck("small net", in, {0, 1, 2, 3, 4, 5}, f, {1e-3, 2e-3, 2e-3});
  // conv bias before batch norm has no effect on the output: its gradient is ~0.
  for (float g : in[1].grad().to_vector()) CHECK(std::fabs(g) < 1e-5f);  // cancels to rounding
}

// ------------------------------------------------------------------ the tape's rules

TEST_CASE("autograd: a tensor used twice accumulates both paths: y = x*x + x") {
  Tensor x = rand_tensor({7}, 160);
  x.set_requires_grad(true);
  Tensor y = ops::add(ops::mul(x, x), x);
  std::vector<float> r = random_vector(7, 161);
  run_backward(y, Tensor::from_vector({7}, r));
  std::vector<float> xv = x.to_vector(), g = x.grad().to_vector(), want(7);
  for (int i = 0; i < 7; ++i) want[i] = r[i] * (2 * xv[i] + 1);
  // three float products and a sum per element: a couple of ulp
  EMOTUNE_CHECK_CLOSE(allclose(g, want, 1e-6, 1e-6));
}

TEST_CASE("autograd: add(x, x) and an intermediate used twice sum without aliasing") {
  Tensor x = rand_tensor({5}, 162);
  x.set_requires_grad(true);
  std::vector<float> r = random_vector(5, 163);
  Tensor seed = Tensor::from_vector({5}, r);
  Tensor z = ops::scale(x, 3.0f);           // intermediate
  Tensor y = ops::add(ops::add(z, z), z);   // dy/dz = 3, dy/dx = 9
  run_backward(y, seed);
  std::vector<float> g = x.grad().to_vector();
  for (int i = 0; i < 5; ++i) CHECK(g[i] == doctest::Approx(9.0 * r[i]).epsilon(1e-6));  // exact up to rounding
  CHECK(seed.to_vector() == r);  // the seed was not used as an accumulator
}

TEST_CASE("autograd: leaves that receive the same gradient tensor keep separate .grad buffers") {
  // add's backward hands the very same tensor to both inputs; each leaf must own a copy, or the
  // second backward below would accumulate into a shared buffer (and into the seed).
  Tensor a = rand_tensor({4}, 164), b = rand_tensor({4}, 165);
  a.set_requires_grad(true);
  b.set_requires_grad(true);
  std::vector<float> r = random_vector(4, 166);
  Tensor seed = Tensor::from_vector({4}, r);
  run_backward(ops::add(a, b), seed);
  run_backward(ops::add(a, b), seed);
  std::vector<float> twice(4);
  for (int i = 0; i < 4; ++i) twice[i] = r[i] + r[i];  // exact in float
  CHECK(a.grad().to_vector() == twice);
  CHECK(b.grad().to_vector() == twice);
  CHECK(a.grad().data() != b.grad().data());
  CHECK(seed.to_vector() == r);
}

TEST_CASE("autograd: backward twice accumulates into .grad; zero_grad clears it") {
  Tensor w = rand_tensor({3, 4}, 170), x = rand_tensor({2, 4}, 171);
  w.set_requires_grad(true);
  auto loss = [&] {
    Tensor t = Tensor::zeros({2, 3});
    t.data()[0] = 1.0f;
    t.data()[5] = 1.0f;
    return ops::softmax_cross_entropy(ops::linear(x, w, Tensor()), t, Tensor(), 0.0f);
  };
  loss().backward();
  std::vector<float> g1 = w.grad().to_vector();
  Tensor g1_handle = w.grad();
  loss().backward();
  std::vector<float> g2 = w.grad().to_vector();
  for (size_t i = 0; i < g1.size(); ++i) CHECK(g2[i] == 2 * g1[i]);  // g + g is exact in float
  // the first gradient tensor handed out was accumulated in place
  CHECK(g1_handle.to_vector() == g2);
  w.zero_grad();
  CHECK_FALSE(w.grad().defined());
  loss().backward();
  CHECK(w.grad().to_vector() == g1);  // fresh again, bit-identical to the first
}

TEST_CASE("autograd: a leaf that does not require grad is left alone; backward order is topological") {
  // A diamond: a -> b, a -> c, (b, c) -> d; a's gradient must come after both paths finished.
  Tensor x = rand_tensor({4}, 180);
  x.set_requires_grad(true);
  Tensor a = ops::scale(x, 2.0f);
  Tensor b = ops::mul(a, a);         // 4x^2
  Tensor c = ops::scale(a, -1.0f);   // -2x
  Tensor d = ops::add(b, c);         // dd/dx = 8x - 2
  run_backward(d, Tensor::full({4}, 1.0f));
  std::vector<float> xv = x.to_vector(), g = x.grad().to_vector();
  for (int i = 0; i < 4; ++i) CHECK(g[i] == doctest::Approx(8.0 * xv[i] - 2.0).epsilon(1e-6));
  CHECK_FALSE(a.grad().defined());  // intermediates keep no .grad
}

TEST_CASE("autograd: NoGradGuard records nothing") {
  Tensor x = rand_tensor({3}, 190);
  x.set_requires_grad(true);
  CHECK(grad_enabled());
  Tensor y;
  {
    NoGradGuard g;
    CHECK_FALSE(grad_enabled());
    {
      NoGradGuard nested;
      CHECK_FALSE(grad_enabled());
    }
    CHECK_FALSE(grad_enabled());  // the nested guard restores "off", not "on"
    y = ops::l2_penalty(ops::mul(x, x), 1.0f);
  }
  CHECK(grad_enabled());
  CHECK_FALSE(y.requires_grad());
  CHECK(y.grad_fn() == nullptr);
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "does not require grad"));
  CHECK(contains(msg, "NoGradGuard"));
  CHECK_FALSE(x.grad().defined());
  // The same expression outside the guard does record.
  CHECK(ops::l2_penalty(ops::mul(x, x), 1.0f).requires_grad());
}

TEST_CASE("autograd: a result of constants cannot seed backward") {
  Tensor a = rand_tensor({2}, 191), b = rand_tensor({2}, 192);
  Tensor y = ops::l2_penalty(ops::add(a, b), 1.0f);
  CHECK_FALSE(y.requires_grad());
  CHECK(contains(error_of([&] { y.backward(); }), "does not require grad"));
}

TEST_CASE("autograd: backward on a non-scalar names its shape") {
  Tensor x = rand_tensor({2, 3}, 193);
  x.set_requires_grad(true);
  Tensor y = ops::scale(x, 2.0f);
  std::string msg = error_of([&] { y.backward(); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "single-element"));
  CHECK_FALSE(x.grad().defined());
  // an explicit seed must match the root's shape
  msg = error_of([&] { run_backward(y, Tensor::zeros({3, 2})); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
}

// ------------------------------------------------------------------ shape errors from ops

TEST_CASE("ops: conv2d shape errors name both shapes") {
  Tensor x = Tensor::zeros({2, 3, 8, 8}), w = Tensor::zeros({4, 5, 3, 3});
  std::string msg = error_of([&] { (void)ops::conv2d(x, w, Tensor(), 1, 1); });
  CHECK(contains(msg, "conv2d"));
  CHECK(contains(msg, "[2, 3, 8, 8]"));
  CHECK(contains(msg, "[4, 5, 3, 3]"));
  msg = error_of([&] { (void)ops::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({5}), 1, 1); });
  CHECK(contains(msg, "bias"));
  CHECK(contains(msg, "[5]"));
  CHECK(contains(msg, "[4, 3, 3, 3]"));
  msg = error_of([&] { (void)ops::conv2d(Tensor::zeros({3, 8, 8}), Tensor::zeros({4, 3, 3, 3}), Tensor(), 1, 1); });
  CHECK(contains(msg, "[3, 8, 8]"));
  CHECK(contains(msg, "4 dimensions"));
  msg = error_of([&] { (void)ops::conv2d(Tensor::zeros({1, 3, 2, 2}), Tensor::zeros({4, 3, 5, 5}), Tensor(), 1, 0); });
  CHECK(contains(msg, "[1, 3, 2, 2]"));
  CHECK(contains(msg, "[4, 3, 5, 5]"));
  CHECK(contains(error_of([&] { (void)ops::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), 0, 1); }), "stride"));
}

TEST_CASE("ops: linear, batch_norm and cross-entropy shape errors name both shapes") {
  std::string msg = error_of([] { (void)ops::linear(Tensor::zeros({2, 5}), Tensor::zeros({3, 4}), Tensor()); });
  CHECK(contains(msg, "linear"));
  CHECK(contains(msg, "[2, 5]"));
  CHECK(contains(msg, "[3, 4]"));
  msg = error_of([] { (void)ops::linear(Tensor::zeros({2, 4}), Tensor::zeros({3, 4}), Tensor::zeros({2})); });
  CHECK(contains(msg, "[2]"));
  CHECK(contains(msg, "[3, 4]"));
  msg = error_of([] { (void)ops::linear(Tensor::zeros({2, 2, 2}), Tensor::zeros({3, 4}), Tensor()); });
  CHECK(contains(msg, "[2, 2, 2]"));

  Tensor rm = Tensor::zeros({3}), rv = Tensor::full({3}, 1.0f);
  msg = error_of([&] {
    (void)ops::batch_norm(Tensor::zeros({2, 4, 3, 3}), Tensor::zeros({3}), Tensor::zeros({3}), rm, rv, true, 0.1f, 1e-3f);
  });
  CHECK(contains(msg, "[3]"));
  CHECK(contains(msg, "[2, 4, 3, 3]"));
  msg = error_of([&] {
    (void)ops::batch_norm(Tensor::zeros({1, 3}), Tensor::zeros({3}), Tensor::zeros({3}), rm, rv, true, 0.1f, 1e-3f);
  });
  CHECK(contains(msg, "more than one value"));
  // eval mode with parameters that require grad refuses rather than returning no parameter gradient
  Tensor gamma = Tensor::full({3}, 1.0f).set_requires_grad(true);
  msg = error_of([&] { (void)ops::batch_norm(Tensor::zeros({2, 3}), gamma, Tensor::zeros({3}), rm, rv, false, 0.1f, 1e-3f); });
  CHECK(contains(msg, "eval"));

  msg = error_of([] { (void)ops::softmax_cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2, 4}), Tensor(), 0.0f); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[2, 4]"));
  msg = error_of([] { (void)ops::softmax_cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor::zeros({4}), 0.0f); });
  CHECK(contains(msg, "[4]"));
  CHECK(contains(error_of([] { (void)ops::softmax_cross_entropy(Tensor::zeros({2, 3}), Tensor::zeros({2, 3}), Tensor(), 1.0f); }),
                 "smoothing"));
}

TEST_CASE("conv2d_relu: the values and gradients of relu(conv2d(...)), bit for bit") {
  // The fused op runs the same kernels as the pair (the conv's Winograd or im2col path with the
  // ReLU applied to the same floats; backward masks with y > 0, which selects the elements x > 0
  // does), so forward and gradients must be identical; the pair's own gradients are checked
  // against finite differences above (conv2d, relu). One shape on the Winograd path (3x3 stride
  // 1, 16 channels, 64 output tiles) and one on im2col (one input channel), both with a bias.
  struct Case { Shape x, w; int pad; };
  const Case cases[] = {{{4, 16, 8, 8}, {16, 16, 3, 3}, 1}, {{2, 1, 6, 6}, {4, 1, 3, 3}, 1}};
  uint64_t seed = 400;
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.x));
    const Tensor x0 = rand_tensor(c.x, seed++), w0 = rand_tensor(c.w, seed++), b0 = rand_tensor({c.w[0]}, seed++);
    const std::vector<float> r = random_vector((size_t)(c.x[0] * c.w[0] * c.x[2] * c.x[3]), seed++, -1.0f, 1.0f);
    std::vector<std::vector<float>> out[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor x = x0.clone(), w = w0.clone(), b = b0.clone();
      x.set_requires_grad(true);
      w.set_requires_grad(true);
      b.set_requires_grad(true);
      Tensor y = fused ? ops::conv2d_relu(x, w, b, 1, c.pad) : ops::relu(ops::conv2d(x, w, b, 1, c.pad));
      REQUIRE(y.numel() == (int64_t)r.size());
      run_backward(y, Tensor::from_vector(y.shape(), r));
      out[fused] = {y.to_vector(), x.grad().to_vector(), w.grad().to_vector(), b.grad().to_vector()};
    }
    int64_t zeros = 0;
    for (float v : out[1][0]) zeros += v == 0.0f;
    CHECK(zeros > 0);  // the ReLU did cut something
    for (int i = 0; i < 4; ++i) {
      CAPTURE(i);  // 0: y, 1: dx, 2: dw, 3: db
      EMOTUNE_CHECK_CLOSE(allclose(out[1][i], out[0][i], 0, 0));
    }
  }
}

TEST_CASE("batch_norm_relu: the values and gradients of relu(batch_norm(...)), bit for bit") {
  // Training mode runs the fused CPU kernels (tests/test_batch_norm.cpp holds them to the pair's
  // kernels bit for bit); this checks the op around them: the saved tensors, the gradients to x,
  // gamma and beta, the running statistics, and that eval mode and a [N, C] input work too.
  struct Case { Shape x; bool training; };
  const Case cases[] = {{{4, 6, 5, 5}, true}, {{8, 5}, true}, {{3, 4, 3, 3}, false}};
  uint64_t seed = 500;
  for (const Case& c : cases) {
    CAPTURE(shape_str(c.x));
    CAPTURE(c.training);
    const int64_t ch = c.x[1];
    const Tensor x0 = rand_tensor(c.x, seed++), g0 = rand_tensor({ch}, seed++), b0 = rand_tensor({ch}, seed++);
    const std::vector<float> r = random_vector((size_t)x0.numel(), seed++, -1.0f, 1.0f);
    std::vector<std::vector<float>> out[2];
    for (int fused = 0; fused < 2; ++fused) {
      Tensor x = x0.clone(), gamma = g0.clone(), beta = b0.clone();
      Tensor rm = Tensor::full({ch}, 0.25f), rv = Tensor::full({ch}, 2.0f);
      x.set_requires_grad(true);
      gamma.set_requires_grad(c.training);  // eval mode passes gradients to x only
      beta.set_requires_grad(c.training);
      Tensor y = fused ? ops::batch_norm_relu(x, gamma, beta, rm, rv, c.training, 0.1f, 1e-3f)
                       : ops::relu(ops::batch_norm(x, gamma, beta, rm, rv, c.training, 0.1f, 1e-3f));
      run_backward(y, Tensor::from_vector(y.shape(), r));
      out[fused] = {y.to_vector(), x.grad().to_vector(), rm.to_vector(), rv.to_vector()};
      if (c.training) {
        out[fused].push_back(gamma.grad().to_vector());
        out[fused].push_back(beta.grad().to_vector());
      }
    }
    int64_t zeros = 0;
    for (float v : out[1][0]) zeros += v == 0.0f;
    CHECK(zeros > 0);  // the ReLU did cut something
    for (size_t i = 0; i < out[0].size(); ++i) {
      CAPTURE(i);  // 0: y, 1: dx, 2: running mean, 3: running var, 4: dgamma, 5: dbeta
      EMOTUNE_CHECK_CLOSE(allclose(out[1][i], out[0][i], 0, 0));
    }
  }
}
