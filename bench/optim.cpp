// The fused optimizer updates on the CPU (kernels/cpu/optim.cpp): SGD (plain; momentum with
// Nesterov and weight decay) and Adam / AdamW, over as many parameters as the conv and dense
// layers of each network hold (weights and biases of tests/shapes.h's conv and linear tables).
// Before timing, one update of each is checked against the same formula in double computed here
// (PyTorch's, as in tests/test_optim.cpp): within 1e-6. GB/s counts the floats read and written
// once per parameter (SGD plain: w, g read, w written; momentum adds v; Adam adds m and v).
//   bench_optim
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/optim.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

// g as a late-training gradient; m, v of a run under way, with sqrt(v) >= |m| so that each Adam
// step is of order lr (v near 0 would make the steps, and their rounding, arbitrarily large).
struct Problem {
  int64_t n;
  std::vector<float> w, g, m, v;
  explicit Problem(int64_t count)
      : n(count), w(bench::uniform(count, 1)), g(bench::uniform(count, 2, -0.1f, 0.1f)),
        m(bench::uniform(count, 3, -0.01f, 0.01f)), v(bench::uniform(count, 4, 1e-4f, 2e-4f)) {}
};

SgdParams sgd(bool momentum) {
  SgdParams p;
  p.lr = 0.05f;
  if (momentum) p.momentum = 0.9f, p.nesterov = true, p.weight_decay = 1e-4f;
  return p;
}

AdamParams adam(bool decoupled) {
  AdamParams p;
  p.weight_decay = 1e-2f;
  p.decoupled = decoupled;
  p.step = 3;  // bias corrections not 1
  return p;
}

void validate(const std::string& name, const Problem& q0) {
  for (bool momentum : {false, true}) {
    Problem q = q0;
    const SgdParams p = sgd(momentum);
    sgd_update_cpu(q.n, p, q.w.data(), q.g.data(), q.v.data());
    std::vector<double> want(q.n);
    for (int64_t i = 0; i < q.n; ++i) {
      const double gi = q0.g[i] + (double)p.weight_decay * q0.w[i], vi = (double)p.momentum * q0.v[i] + gi;
      want[i] = q0.w[i] - (double)p.lr * (!momentum ? gi : p.nesterov ? gi + (double)p.momentum * vi : vi);
    }
    bench::expect_close(name + (momentum ? " sgd momentum" : " sgd"), q.w, want, 1e-6, 1e-6);  // a few roundings
  }
  for (bool decoupled : {false, true}) {
    Problem q = q0;
    const AdamParams p = adam(decoupled);
    adam_update_cpu(q.n, p, q.w.data(), q.g.data(), q.m.data(), q.v.data());
    const double b1 = p.beta1, b2 = p.beta2, t = (double)p.step;
    std::vector<double> want(q.n);
    for (int64_t i = 0; i < q.n; ++i) {
      double w = q0.w[i], gi = q0.g[i];
      if (decoupled) w *= 1 - (double)p.lr * p.weight_decay;
      else gi += (double)p.weight_decay * w;
      const double mi = b1 * q0.m[i] + (1 - b1) * gi, vi = b2 * q0.v[i] + (1 - b2) * gi * gi;
      want[i] = w - (double)p.lr * (mi / (1 - std::pow(b1, t))) / (std::sqrt(vi / (1 - std::pow(b2, t))) + p.eps);
    }
    // The step is ~lr = 1e-3 with a float relative error of ~1e-6: far below the 1e-6 bound.
    bench::expect_close(name + (decoupled ? " adamw" : " adam"), q.w, want, 1e-6, 1e-6);
  }
}

int64_t parameters(const std::string& net) {
  int64_t n = 0;
  for (const auto& c : testing::conv_cases())
    if (c.name.rfind(net + ".", 0) == 0) n += c.shape.w_size() + c.shape.k;
  for (const auto& c : testing::linear_cases())
    if (c.name.rfind(net + ".", 0) == 0) n += (int64_t)c.shape.in * c.shape.out + c.shape.out;
  return n;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_optim", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, one update of every conv and dense parameter, wall clock");
  for (const std::string net : {"paper", "vgg"}) {
    const int64_t n = parameters(net);
    auto q = std::make_shared<Problem>(n);
    const std::string shape = net + "_params/n" + std::to_string(n);
    validate(shape, *q);
    const double f = (double)n * sizeof(float);
    bench::register_timed("sgd/" + shape, [q] { sgd_update_cpu(q->n, sgd(false), q->w.data(), q->g.data(), nullptr); },
                          3 * f);
    bench::register_timed("sgd_nesterov/" + shape,
                          [q] { sgd_update_cpu(q->n, sgd(true), q->w.data(), q->g.data(), q->v.data()); }, 5 * f);
    for (bool decoupled : {false, true})
      bench::register_timed((decoupled ? "adamw/" : "adam/") + shape, [q, decoupled] {
        adam_update_cpu(q->n, adam(decoupled), q->w.data(), q->g.data(), q->m.data(), q->v.data());
      }, 7 * f);
  }
  return bench::run_benchmarks(argc, argv);
}
