// batch_norm on the CPU (kernels/cpu/batch_norm.cpp): training forward, eval forward and backward
// on every real shape of tests/shapes.h's batch_norm table at batch 16, fp32 NCHW as [N, C, HW].
// Before timing, the outputs are checked against the reference in double
// (kernels/cpu/batch_norm_ref.h) with the tests' tolerances. GB/s counts the least traffic:
// forward reads x and writes y; backward reads x and dy, writes dx (per-channel vectors ignored).
//   bench_batch_norm [--benchmark_filter=backward]
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/batch_norm.h"
#include "kernels/cpu/batch_norm_ref.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

constexpr int kBatch = 16;
constexpr float kEps = 1e-5f, kMomentum = 0.1f;

struct Problem {
  BatchNormShape p;
  std::vector<float> x, dy, gamma, beta, rm, rv, y, mean, invstd, dx, dg, db;
  explicit Problem(const BatchNormShape& s)
      : p(s), x(bench::uniform(s.size(), 1, -2, 3)), dy(bench::uniform(s.size(), 2)),
        gamma(bench::uniform(s.c, 3, 0.5f, 1.5f)), beta(bench::uniform(s.c, 4)), rm(s.c, 0.0f), rv(s.c, 1.0f),
        y(s.size()), mean(s.c), invstd(s.c), dx(s.size()), dg(s.c), db(s.c) {}
  void forward_train() {
    batch_norm_forward_train_cpu(p, x.data(), gamma.data(), beta.data(), kEps, kMomentum, rm.data(), rv.data(),
                                 y.data(), mean.data(), invstd.data());
  }
  void forward_eval() {
    batch_norm_forward_eval_cpu(p, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(), kEps, y.data());
  }
  void backward() {
    batch_norm_backward_cpu(p, x.data(), dy.data(), gamma.data(), mean.data(), invstd.data(), dx.data(), dg.data(),
                            db.data());
  }
};

std::vector<double> to_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

// Training forward and backward against the double reference (tolerances of tests/test_batch_norm.cpp).
void validate(const std::string& name, Problem& q) {
  const BatchNormShape& p = q.p;
  q.forward_train();
  q.backward();
  auto x = to_double(q.x), dy = to_double(q.dy), g = to_double(q.gamma), b = to_double(q.beta);
  std::vector<double> rm(p.c, 0.0), rv(p.c, 1.0), y(p.size()), mean(p.c), invstd(p.c), dx(p.size()), dg(p.c), db(p.c);
  batch_norm_forward_train_ref<double>(p, x.data(), g.data(), b.data(), (double)kEps, (double)kMomentum, rm.data(),
                                       rv.data(), y.data(), mean.data(), invstd.data(), 0, p.c);
  batch_norm_backward_ref<double>(p, x.data(), dy.data(), g.data(), mean.data(), invstd.data(), dx.data(), dg.data(),
                                  db.data(), 0, p.c);
  bench::expect_close(name + " forward y", q.y, y, 1e-6, 1e-6);  // double inside, one rounding
  bench::expect_close(name + " backward dx", q.dx, dx, 1e-5, 1e-5);  // float-rounded saved statistics
  bench::expect_close(name + " backward dgamma", q.dg, dg, 1e-5, 1e-5);
  bench::expect_close(name + " backward dbeta", q.db, db, 1e-5, 1e-5);
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_batch_norm", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, NCHW as [N, C, HW], batch " + std::to_string(kBatch) +
                                                     ", wall clock");
  for (const auto& c : testing::batch_norm_cases()) {
    if (bench::is_edge(c.name)) continue;
    BatchNormShape p = c.shape;
    p.n = kBatch;
    auto q = std::make_shared<Problem>(p);
    validate(c.name, *q);
    const std::string shape = bench::layer_of(c.name) + "/n" + std::to_string(kBatch);
    const double t = (double)p.size() * sizeof(float);
    bench::register_timed("batch_norm_forward_train/" + shape, [q] { q->forward_train(); }, 2 * t);
    bench::register_timed("batch_norm_forward_eval/" + shape, [q] { q->forward_eval(); }, 2 * t);
    bench::register_timed("batch_norm_backward/" + shape, [q] { q->backward(); }, 3 * t);
  }
  return bench::run_benchmarks(argc, argv);
}
