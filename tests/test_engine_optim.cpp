// Optimizers through engine/optim.h (parameter refs, per-parameter decay flags, the lr given to
// each step, state export and restore) against the same updates computed here in double, and the
// learning-rate schedules.
#include <doctest/doctest.h>

#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;
using emotune::testing::contains;
using emotune::testing::error_of;

namespace {

// Two parameters: a kernel (decay applies) and a bias (no decay), as layers/ declares them.
struct Params {
  Tensor w = Tensor::from_vector({2, 3}, random_vector(6, 1, -1.0f, 1.0f)).set_requires_grad(true);
  Tensor b = Tensor::from_vector({3}, random_vector(3, 2, -1.0f, 1.0f)).set_requires_grad(true);
  std::vector<ParamRef> refs() { return {{"w", w, true}, {"b", b, false}}; }
};

// The gradient at step k depends on the current weights (so a wrong update changes later
// gradients too): g = 0.5 w + r_k, r_k seeded. Computed from float weights for the engine and
// from double weights for the reference.
template <typename T>
std::vector<T> grad_at(const std::vector<T>& w, int step, uint64_t salt) {
  std::vector<float> r = random_vector(w.size(), 1000 + 17 * (uint64_t)step + salt, -1.0f, 1.0f);
  std::vector<T> g(w.size());
  for (size_t i = 0; i < w.size(); ++i) g[i] = (T)0.5 * w[i] + (T)r[i];
  return g;
}

std::vector<double> to_double(const Tensor& t) {
  std::vector<float> v = t.to_vector();
  return std::vector<double>(v.begin(), v.end());
}

void set_grads(Params& p, int step) {
  p.w.set_grad(Tensor::from_vector(p.w.shape(), grad_at(p.w.to_vector(), step, 0)));
  p.b.set_grad(Tensor::from_vector(p.b.shape(), grad_at(p.b.to_vector(), step, 1)));
}

// Reference SGD (PyTorch, dampening 0) in double on one parameter.
struct SgdRef {
  std::vector<double> w, v;
  void step(const std::vector<double>& g0, const SgdOptions& p, double lr, bool decay) {
    const double wd = decay ? p.weight_decay : 0.0;
    for (size_t i = 0; i < w.size(); ++i) {
      double g = g0[i] + wd * w[i];
      if (p.momentum == 0) {
        w[i] -= lr * g;
        continue;
      }
      v[i] = p.momentum * v[i] + g;
      w[i] -= lr * (p.nesterov ? g + p.momentum * v[i] : v[i]);
    }
  }
};

// Reference Adam / AdamW (PyTorch) in double on one parameter.
struct AdamRef {
  std::vector<double> w, m, v;
  void step(const std::vector<double>& g0, const AdamOptions& p, double lr, bool decay, int t) {
    const double wd = decay ? p.weight_decay : 0.0;
    const double b1 = p.beta1, b2 = p.beta2;
    for (size_t i = 0; i < w.size(); ++i) {
      double g = g0[i];
      if (p.decoupled) w[i] *= 1.0 - lr * wd;
      else g += wd * w[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double mh = m[i] / (1 - std::pow(b1, t)), vh = v[i] / (1 - std::pow(b2, t));
      w[i] -= lr * mh / (std::sqrt(vh) + p.eps);
    }
  }
};

// Float32 updates of O(1) weights with lr <= 0.1 over 6 steps: rounding drifts ~1e-7 per step;
// 2e-6 absolute is a >10x margin, while any formula slip (decay on the bias, a missing bias
// correction, Nesterov's extra term) moves weights by >= 1e-3.
constexpr double kAtol = 2e-6, kRtol = 2e-6;

void check_close(const Tensor& got, const std::vector<double>& want, const char* what) {
  std::vector<float> w32(want.begin(), want.end());
  INFO(what);
  EMOTUNE_CHECK_CLOSE(emotune::testing::allclose(got.to_vector(), w32, kAtol, kRtol));
}

}  // namespace

TEST_CASE("Sgd matches a double reference: plain, momentum, Nesterov, weight decay on kernels only") {
  struct Case { const char* name; float lr; SgdOptions p; };
  const Case cases[] = {
      {"plain", 0.1f, {0.0f, 0.0f, false}},
      {"plain + decay", 0.1f, {0.0f, 0.05f, false}},
      {"momentum", 0.05f, {0.9f, 0.0f, false}},
      {"momentum + decay", 0.05f, {0.9f, 0.1f, false}},
      {"nesterov + decay", 0.05f, {0.9f, 0.1f, true}},
  };
  for (const Case& c : cases) {
    INFO(c.name);
    Params p;
    SgdRef rw{to_double(p.w), std::vector<double>(6, 0.0)}, rb{to_double(p.b), std::vector<double>(3, 0.0)};
    Sgd opt(p.refs(), c.p);
    for (int k = 0; k < 6; ++k) {
      set_grads(p, k);
      rw.step(grad_at(rw.w, k, 0), c.p, c.lr, true);
      rb.step(grad_at(rb.w, k, 1), c.p, c.lr, false);
      opt.step(c.lr);
    }
    CHECK(opt.steps() == 6);
    check_close(p.w, rw.w, "w");
    check_close(p.b, rb.w, "b");
    if (c.p.momentum > 0) {
      check_close(opt.state()[0].tensor, rw.v, "velocity of w");
      check_close(opt.state()[1].tensor, rb.v, "velocity of b");
    }
  }
}

TEST_CASE("Sgd: decay really is skipped for decay=false parameters") {
  // Same gradient, same weights, one with decay and one without: they must differ by lr*wd*w.
  Tensor a = Tensor::from_vector({1}, {2.0f}).set_requires_grad(true);
  Tensor b = Tensor::from_vector({1}, {2.0f}).set_requires_grad(true);
  a.set_grad(Tensor::from_vector({1}, {1.0f}));
  b.set_grad(Tensor::from_vector({1}, {1.0f}));
  Sgd opt({{"a", a, true}, {"b", b, false}}, SgdOptions{0.0f, 0.1f, false});
  opt.step(0.5f);
  CHECK(a.item() == 2.0f - 0.5f * (1.0f + 0.1f * 2.0f));  // the kernel's float expression
  CHECK(b.item() == 1.5f);
}

TEST_CASE("Adam and AdamW match a double reference") {
  struct Case { const char* name; float lr; AdamOptions p; };
  AdamOptions plain;  // Keras defaults: eps 1e-7 (and lr 1e-3 below)
  AdamOptions fast{0.9f, 0.999f, 1e-7f, 0.0f, false};
  AdamOptions l2{0.8f, 0.99f, 1e-7f, 0.1f, false};
  AdamOptions adamw{0.9f, 0.999f, 1e-8f, 0.1f, true};
  const Case cases[] = {
      {"default", 1e-3f, plain}, {"lr 0.05", 0.05f, fast}, {"coupled L2", 0.05f, l2}, {"AdamW", 0.05f, adamw}};
  for (const Case& c : cases) {
    INFO(c.name);
    Params p;
    AdamRef rw{to_double(p.w), std::vector<double>(6, 0.0), std::vector<double>(6, 0.0)};
    AdamRef rb{to_double(p.b), std::vector<double>(3, 0.0), std::vector<double>(3, 0.0)};
    Adam opt(p.refs(), c.p);
    for (int k = 0; k < 6; ++k) {
      set_grads(p, k);
      rw.step(grad_at(rw.w, k, 0), c.p, c.lr, true, k + 1);
      rb.step(grad_at(rb.w, k, 1), c.p, c.lr, false, k + 1);
      opt.step(c.lr);
    }
    check_close(p.w, rw.w, "w");
    check_close(p.b, rb.w, "b");
    auto st = opt.state();
    REQUIRE(st.size() == 4);
    CHECK(st[0].name == "optim.w.m");
    CHECK(st[1].name == "optim.w.v");
    CHECK(st[2].name == "optim.b.m");
    CHECK(st[3].name == "optim.b.v");
    check_close(st[0].tensor, rw.m, "m of w");
    check_close(st[1].tensor, rw.v, "v of w");
  }
}

TEST_CASE("Adam: the first step moves every weight by about lr (bias correction applied)") {
  // With bias correction, step 1 is lr * g / (|g| + eps) = lr * sign(g); without it, 0.1 lr/sqrt(0.001).
  Tensor w = Tensor::zeros({4}).set_requires_grad(true);
  w.set_grad(Tensor::from_vector({4}, {0.3f, -2.0f, 1e-3f, 5.0f}));
  Adam opt({{"w", w, true}}, AdamOptions{0.9f, 0.999f, 1e-7f, 0.0f, false});
  opt.step(0.01f);
  std::vector<float> v = w.to_vector();
  // |step| = lr |g| / (|g| + eps): eps/|g| <= 1e-4 relative for |g| >= 1e-3
  for (int i = 0; i < 4; ++i) CHECK(std::fabs(v[i]) == doctest::Approx(0.01).epsilon(2e-4));
  CHECK(v[0] < 0);
  CHECK(v[1] > 0);
}

TEST_CASE("optimizers skip parameters without a gradient; zero_grad drops gradients") {
  Params p;
  std::vector<float> w0 = p.w.to_vector(), b0 = p.b.to_vector();
  Adam opt(p.refs(), AdamOptions{});
  p.w.set_grad(Tensor::full(p.w.shape(), 1.0f));  // b has none
  opt.step(1e-3f);
  CHECK(p.w.to_vector() != w0);
  CHECK(p.b.to_vector() == b0);
  CHECK(opt.state()[2].tensor.to_vector() == std::vector<float>(3, 0.0f));  // b's m untouched
  opt.zero_grad();
  CHECK_FALSE(p.w.grad().defined());
  CHECK_FALSE(p.b.grad().defined());
  std::vector<float> w1 = p.w.to_vector();
  opt.step(1e-3f);  // nothing to do
  CHECK(p.w.to_vector() == w1);
}

TEST_CASE("optimizer state round trip through a checkpoint reproduces the next step exactly") {
  std::string dir = emotune::testing::temp_dir("optim_state");
  for (int which = 0; which < 2; ++which) {
    INFO((which == 0 ? "Sgd" : "Adam"));
    auto make = [&](Params& p) -> std::unique_ptr<Optimizer> {
      if (which == 0) return std::make_unique<Sgd>(p.refs(), SgdOptions{0.9f, 0.01f, true});
      return std::make_unique<Adam>(p.refs(), AdamOptions{0.9f, 0.999f, 1e-7f, 0.01f, true});
    };
    const float lr = which == 0 ? 0.05f : 0.01f;
    Params a;
    auto opt_a = make(a);
    for (int k = 0; k < 3; ++k) {
      set_grads(a, k);
      opt_a->step(lr);
    }
    // Save weights + optimizer state as a trainer would.
    std::vector<NamedTensor> all = {{"w", a.w}, {"b", a.b}};
    for (auto& nt : opt_a->state()) all.push_back(nt);
    std::string path = dir + "/state" + std::to_string(which) + ".safetensors";
    save_safetensors(path, all, {{"steps", std::to_string(opt_a->steps())}});

    // A fresh process: new parameters and optimizer, restored from the file.
    Checkpoint ck = load_safetensors(path);
    Params b;
    b.w.copy_from(ck.get("w", b.w.shape()));
    b.b.copy_from(ck.get("b", b.b.shape()));
    auto opt_b = make(b);
    opt_b->load_state(ck);
    opt_b->set_steps(std::stoll(ck.meta("steps")));
    CHECK(opt_b->steps() == 3);

    set_grads(a, 3);
    set_grads(b, 3);
    opt_a->step(lr);
    opt_b->step(lr);
    CHECK(b.w.to_vector() == a.w.to_vector());  // bit-identical
    CHECK(b.b.to_vector() == a.b.to_vector());
    auto sa = opt_a->state(), sb = opt_b->state();
    REQUIRE(sa.size() == sb.size());
    for (size_t i = 0; i < sa.size(); ++i) {
      CHECK(sa[i].name == sb[i].name);
      CHECK(sa[i].tensor.to_vector() == sb[i].tensor.to_vector());
    }

    if (which == 1) {
      // Without set_steps, Adam's bias correction restarts at t = 1: a different step. This is
      // what set_steps exists for.
      Params c;
      c.w.copy_from(ck.get("w", c.w.shape()));
      c.b.copy_from(ck.get("b", c.b.shape()));
      auto opt_c = make(c);
      opt_c->load_state(ck);
      set_grads(c, 3);
      opt_c->step(lr);
      CHECK(c.w.to_vector() != a.w.to_vector());
    }
    // A checkpoint without the state names the missing tensor.
    Checkpoint empty;
    empty.path = "x.safetensors";
    std::string msg = error_of([&] { opt_b->load_state(empty); });
    CHECK(contains(msg, "x.safetensors"));
    CHECK(contains(msg, which == 0 ? "optim.w.velocity" : "optim.w.m"));
  }
}

TEST_CASE("optimizer: each step uses the lr it is given, for Sgd and Adam") {
  // Sgd without momentum: w -= lr * g, exact in float for these values.
  Tensor w = Tensor::from_vector({1}, {1.0f}).set_requires_grad(true);
  Sgd sgd({{"w", w, true}}, SgdOptions{});
  w.set_grad(Tensor::from_vector({1}, {2.0f}));
  sgd.step(0.25f);
  CHECK(w.item() == 0.5f);  // 1 - 0.25*2
  sgd.step(0.125f);
  CHECK(w.item() == 0.25f);  // 0.5 - 0.125*2
  // Adam's first step moves by lr * sign(g) (bias-corrected): two optimizers that differ only in
  // the lr handed to step() move by amounts in that ratio.
  Tensor a = Tensor::zeros({1}).set_requires_grad(true), b = Tensor::zeros({1}).set_requires_grad(true);
  Adam adam_a({{"a", a, true}}, AdamOptions{}), adam_b({{"b", b, true}}, AdamOptions{});
  a.set_grad(Tensor::from_vector({1}, {1.0f}));
  b.set_grad(Tensor::from_vector({1}, {1.0f}));
  adam_a.step(0.01f);
  adam_b.step(0.04f);
  // |step| = lr |g| / (|g| + eps) with |g| = 1, eps 1e-7: 1e-7 relative
  CHECK(a.item() == doctest::Approx(-0.01).epsilon(1e-6));
  CHECK(b.item() == doctest::Approx(-0.04).epsilon(1e-6));
}

// ------------------------------------------------------------------ schedules

TEST_CASE("LrSchedule: constant and step") {
  ScheduleConfig c;
  c.base_lr = 0.1f;
  LrSchedule constant(c);
  for (int e : {0, 5, 100}) CHECK(constant.lr(e) == 0.1f);
  c.kind = "step";
  c.step_size = 3;
  c.gamma = 0.5f;
  LrSchedule step(c);
  const double want[] = {0.1, 0.1, 0.1, 0.05, 0.05, 0.05, 0.025, 0.025, 0.025, 0.0125};
  // float powers of 0.5 times 0.1: one rounding
  for (int e = 0; e < 10; ++e) CHECK(step.lr(e) == doctest::Approx(want[e]).epsilon(1e-6));
  step.observe(0.5f);  // only plateau reacts
  CHECK(step.lr(0) == 0.1f);
}

TEST_CASE("LrSchedule: cosine with warm-up") {
  ScheduleConfig c;
  c.kind = "cosine";
  c.base_lr = 1e-3f;
  c.min_lr = 1e-5f;
  c.epochs = 10;
  c.warmup_epochs = 2;
  LrSchedule s(c);
  const double base = 1e-3, lo = 1e-5;
  // warm-up: base * (e + 1) / (warmup + 1)
  CHECK(s.lr(0) == doctest::Approx(base / 3).epsilon(1e-6));
  CHECK(s.lr(1) == doctest::Approx(2 * base / 3).epsilon(1e-6));
  for (int e = 2; e <= 12; ++e) {
    double t = std::min(1.0, (e - 2) / 8.0);
    INFO("epoch " << e);
    CHECK(s.lr(e) == doctest::Approx(lo + (base - lo) * 0.5 * (1 + std::cos(M_PI * t))).epsilon(1e-6));
  }
  CHECK(s.lr(2) == doctest::Approx(base).epsilon(1e-6));   // the peak right after warm-up
  CHECK(s.lr(6) == doctest::Approx((base + lo) / 2).epsilon(1e-6));
  CHECK(s.lr(10) == doctest::Approx(lo).epsilon(1e-6));
  CHECK(s.lr(50) == doctest::Approx(lo).epsilon(1e-6));     // stays at the floor past the end
  for (int e = 3; e <= 10; ++e) CHECK(s.lr(e) < s.lr(e - 1));  // monotone after warm-up
}

TEST_CASE("LrSchedule: reduce on plateau (patience, factor, min_lr, state round trip)") {
  ScheduleConfig c;
  c.kind = "plateau";
  c.base_lr = 0.1f;
  c.factor = 0.5f;
  c.patience = 2;
  c.min_lr = 0.02f;
  c.threshold = 1e-3f;
  c.maximize = true;  // accuracy
  LrSchedule s(c);
  CHECK(s.lr(0) == 0.1f);
  struct Obs { float metric; double lr; };
  const Obs seq[] = {
      {0.50f, 0.1},     // first value is the best
      {0.60f, 0.1},     // better
      {0.60f, 0.1},     // bad 1
      {0.6005f, 0.05},  // not better by more than the threshold: bad 2 -> halve
      {0.55f, 0.05},    // bad 1 (the counter restarted)
      {0.70f, 0.05},    // better: resets the counter
      {0.69f, 0.05},    // bad 1
      {0.69f, 0.025},   // bad 2 -> halve
      {0.69f, 0.025},   // bad 1
      {0.69f, 0.02},    // bad 2 -> 0.0125, clamped to min_lr
      {0.69f, 0.02},
      {0.69f, 0.02},    // stays at min_lr
  };
  std::string saved;
  int i = 0;
  for (const Obs& o : seq) {
    s.observe(o.metric);
    INFO("observation " << i);
    CHECK(s.lr(i + 1) == doctest::Approx(o.lr).epsilon(1e-6));  // products of 0.5 in float
    if (++i == 7) saved = s.state_json();
  }
  // A resumed schedule continues exactly: restore after observation 7 and replay the rest.
  LrSchedule r(c);
  r.load_state_json(saved);
  CHECK(r.lr(0) == doctest::Approx(0.05).epsilon(1e-6));
  for (int k = 7; k < 12; ++k) {
    r.observe(seq[k].metric);
    CHECK(r.lr(0) == doctest::Approx(seq[k].lr).epsilon(1e-6));
  }
  // Loss mode: lower is better.
  c.maximize = false;
  c.patience = 1;
  LrSchedule l(c);
  l.observe(1.0f);
  l.observe(0.9f);  // better
  CHECK(l.lr(0) == 0.1f);
  l.observe(0.95f);  // worse: patience 1 -> halve
  CHECK(l.lr(0) == doctest::Approx(0.05).epsilon(1e-6));

  CHECK(contains(error_of([&] { r.load_state_json("{\"current\": 1}"); }), "schedule state"));
  CHECK(contains(error_of([&] { r.load_state_json("not json"); }), "schedule state"));
}

TEST_CASE("LrSchedule: unknown kind and bad values are refused") {
  ScheduleConfig c;
  c.kind = "exponential";
  std::string msg = error_of([&] { LrSchedule s(c); });
  CHECK(contains(msg, "'exponential'"));
  CHECK(contains(msg, "cosine"));
  c.kind = "constant";
  c.base_lr = 0.0f;
  CHECK(contains(error_of([&] { LrSchedule s(c); }), "learning rate"));
  c.base_lr = 0.1f;
  c.kind = "step";
  c.step_size = 0;
  CHECK(contains(error_of([&] { LrSchedule s(c); }), "step_size"));
  c.kind = "plateau";
  c.factor = 1.0f;
  CHECK(contains(error_of([&] { LrSchedule s(c); }), "factor"));
}
