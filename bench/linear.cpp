// linear on the CPU (kernels/cpu/linear.cpp, OpenBLAS sgemm): forward and backward (dx, dw, db)
// on every real shape of tests/shapes.h's linear table at batch 16 and 128, fp32, x [N, IN],
// w [OUT, IN]. Before timing, the outputs are checked against the reference loops
// (linear_*_ref_cpu) with the tests' bound: 4 float eps per summed term, plus 1e-5 relative.
// GFLOP/s counts 2 flops per multiply-add: forward N*IN*OUT of them, backward twice that.
//   bench_linear [--benchmark_filter=backward]
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/linear.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

struct Problem {
  LinearShape p;
  std::vector<float> x, w, b, dy, y, dx, dw, db;
  explicit Problem(const LinearShape& s)
      : p(s), x(bench::uniform((int64_t)s.n * s.in, 1)), w(bench::uniform((int64_t)s.out * s.in, 2)),
        b(bench::uniform(s.out, 3)), dy(bench::uniform((int64_t)s.n * s.out, 4)), y((size_t)s.n * s.out),
        dx((size_t)s.n * s.in), dw((size_t)s.out * s.in), db(s.out) {}
  void forward() { linear_forward_cpu(p, x.data(), w.data(), b.data(), y.data()); }
  void backward() { linear_backward_cpu(p, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data()); }
};

void validate(const std::string& name, Problem& q) {
  const LinearShape& p = q.p;
  q.forward();
  q.backward();
  std::vector<float> y(q.y.size()), dx(q.dx.size()), dw(q.dw.size()), db(q.db.size());
  linear_forward_ref_cpu(p, q.x.data(), q.w.data(), q.b.data(), y.data());
  linear_backward_ref_cpu(p, q.x.data(), q.w.data(), q.dy.data(), dx.data(), dw.data(), db.data());
  const double eps4 = 4.0 * 1.1920929e-7;  // see tests/test_linear.cpp
  bench::expect_close(name + " forward", q.y, y, eps4 * (p.in + 1), 1e-5);
  bench::expect_close(name + " backward dx", q.dx, dx, eps4 * p.out, 1e-5);
  bench::expect_close(name + " backward dw", q.dw, dw, eps4 * p.n, 1e-5);
  bench::expect_close(name + " backward db", q.db, db, eps4 * p.n, 1e-5);
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_linear", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, x [N, IN], w [OUT, IN], GFLOP/s = 2*MACs/s, wall clock");
  for (int batch : {16, 128}) {
    for (const auto& c : testing::linear_cases()) {
      if (bench::is_edge(c.name)) continue;
      LinearShape p = c.shape;
      p.n = batch;
      auto q = std::make_shared<Problem>(p);
      validate(c.name, *q);
      const std::string shape = bench::layer_of(c.name) + "/n" + std::to_string(batch);
      bench::register_timed("linear_forward/" + shape, [q] { q->forward(); }, 0, p.flops());
      bench::register_timed("linear_backward/" + shape, [q] { q->backward(); }, 0, 2 * p.flops());
    }
  }
  return bench::run_benchmarks(argc, argv);
}
