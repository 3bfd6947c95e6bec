// Optimizer CPU kernels: SGD (momentum, Nesterov, weight decay) by hand, SGD and Adam/AdamW
// against independent double math over several steps, and Adam's first step.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "kernels/optim.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;

TEST_CASE("sgd: plain, momentum, Nesterov and weight decay, by hand") {
  // w = 1, g = 1 every step, lr 0.1.
  auto run = [](SgdParams p, int steps) {
    float w = 1.0f, g = 1.0f, v = 0.0f;
    for (int i = 0; i < steps; ++i) sgd_update_cpu(1, p, &w, &g, &v);
    return w;
  };
  SgdParams p;
  p.lr = 0.1f;
  // Each step is a few float operations on values near 1: a few ulps.
  const double tol = 1e-6;
  CHECK(std::fabs(run(p, 2) - 0.8) < tol);  // w -= 0.1 twice
  p.momentum = 0.9f;
  // v: 1, 1.9, 2.71; w: 0.9, 0.71, 0.439
  CHECK(std::fabs(run(p, 3) - 0.439) < tol);
  p.nesterov = true;
  // step = g + 0.9 v: 1.9 then 2.71; w: 0.81, 0.539
  CHECK(std::fabs(run(p, 2) - 0.539) < tol);
  SgdParams d;
  d.lr = 0.1f;
  d.weight_decay = 0.1f;
  // g' = 1 + 0.1 * 1 = 1.1: w = 0.89; then g' = 1 + 0.089 = 1.089: w = 0.7811
  CHECK(std::fabs(run(d, 2) - 0.7811) < tol);
}

TEST_CASE("sgd and adam/adamw follow PyTorch's formulas over several steps (double math in the test)") {
  const int n = 100003;  // above the threading threshold
  auto w0 = random_vector(n, 121);
  for (bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    SgdParams p;
    p.lr = 0.05f;
    p.momentum = 0.8f;
    p.weight_decay = 0.01f;
    p.nesterov = nesterov;
    std::vector<float> w = w0, v(n, 0.0f);
    std::vector<double> wd(w0.begin(), w0.end()), vd(n, 0.0);
    for (int step = 0; step < 4; ++step) {
      auto g = random_vector(n, 130 + step);
      sgd_update_cpu(n, p, w.data(), g.data(), v.data());
      for (int i = 0; i < n; ++i) {
        const double gi = g[i] + (double)p.weight_decay * wd[i];
        vd[i] = (double)p.momentum * vd[i] + gi;
        wd[i] -= (double)p.lr * (nesterov ? gi + (double)p.momentum * vd[i] : vd[i]);
      }
    }
    std::vector<float> want(wd.begin(), wd.end());
    // Four steps of float rounding on values of order 1: ~1e-7 each, 1e-6 in all.
    EMOTUNE_CHECK_CLOSE(allclose(w, want, 1e-6, 1e-6));
  }
  for (bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    AdamParams p;
    p.lr = 0.01f;
    p.weight_decay = 0.05f;
    p.decoupled = decoupled;
    std::vector<float> w = w0, m(n, 0.0f), v(n, 0.0f);
    std::vector<double> wd(w0.begin(), w0.end()), md(n, 0.0), vd(n, 0.0);
    const double b1 = p.beta1, b2 = p.beta2, eps = p.eps, lr = p.lr, dec = p.weight_decay;
    for (int t = 1; t <= 5; ++t) {
      p.step = t;
      auto g = random_vector(n, 140 + t, -0.1f, 0.1f);
      adam_update_cpu(n, p, w.data(), g.data(), m.data(), v.data());
      for (int i = 0; i < n; ++i) {
        double gi = g[i];
        if (decoupled) wd[i] *= 1 - lr * dec;  // AdamW: decay the weight, not the gradient
        else gi += dec * wd[i];                // Adam: L2 added to the gradient
        md[i] = b1 * md[i] + (1 - b1) * gi;
        vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
        const double mhat = md[i] / (1 - std::pow(b1, t)), vhat = vd[i] / (1 - std::pow(b2, t));
        wd[i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
    }
    std::vector<float> want(wd.begin(), wd.end());
    // Each step moves w by about lr = 0.01 with a float relative error ~1e-6 in m^/sqrt(v^)
    // (v is tiny, 1e-5, and carries float rounding): 5 steps * 0.01 * 1e-6 plus the ulp of w.
    EMOTUNE_CHECK_CLOSE(allclose(w, want, 1e-6, 1e-6));
  }
}

TEST_CASE("adam first step moves each weight by lr against the sign of its gradient") {
  AdamParams p;
  p.lr = 0.01f;
  p.step = 1;
  std::vector<float> w = {1.0f, 1.0f}, g = {0.5f, -2.0f}, m(2, 0.0f), v(2, 0.0f);
  adam_update_cpu(2, p, w.data(), g.data(), m.data(), v.data());
  // m^ = g, v^ = g^2 on step 1, so the step is lr * g / (|g| + eps) = lr * sign(g) (eps 1e-7).
  CHECK(std::fabs(w[0] - 0.99) < 1e-6);  // float rounding of 0.99 plus eps/|g| * lr ~ 2e-9
  CHECK(std::fabs(w[1] - 1.01) < 1e-6);
  // m = (1 - beta1) g, v = (1 - beta2) g^2 with the float betas (0.9f is 0.899999976...):
  // a couple of float roundings, 2e-7 relative.
  CHECK(std::fabs(m[0] - (1.0 - (double)0.9f) * 0.5) < 2e-7 * 0.05);
  CHECK(std::fabs(v[1] - (1.0 - (double)0.999f) * 4.0) < 2e-7 * 0.004);
}
