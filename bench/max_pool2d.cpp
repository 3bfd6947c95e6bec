// max_pool2d on the CPU (kernels/cpu/max_pool2d.cpp), forward and backward, on every real shape
// of tests/shapes.h's pool table at batch 16, fp32 NCHW. Before timing, both outputs are checked
// bit-identical to the reference loops (kernels/cpu/max_pool2d_ref.h), as the tests require.
// GB/s counts the least traffic: forward reads x and writes y; backward reads x and dy, writes dx.
//   bench_max_pool2d [--benchmark_filter=forward]
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/cpu/max_pool2d_ref.h"
#include "kernels/max_pool2d.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

constexpr int kBatch = 16;

struct Problem {
  Pool2dShape p;
  std::vector<float> x, dy, y, dx;
  explicit Problem(const Pool2dShape& s)
      : p(s), x(bench::uniform(s.x_size(), 1)), dy(bench::uniform(s.y_size(), 2)), y(s.y_size()), dx(s.x_size()) {}
  void forward() { max_pool2d_forward_cpu(p, x.data(), y.data()); }
  void backward() { max_pool2d_backward_cpu(p, x.data(), dy.data(), dx.data()); }
};

void validate(const std::string& name, Problem& q) {
  std::vector<float> y(q.y.size()), dx(q.dx.size());
  max_pool2d_forward_ref<float>(q.p, q.x.data(), y.data());
  max_pool2d_backward_ref<float>(q.p, q.x.data(), q.dy.data(), dx.data());
  q.forward();
  q.backward();
  bench::expect_close(name + " forward", q.y, y, 0, 0);    // the same selections: exact
  bench::expect_close(name + " backward", q.dx, dx, 0, 0);  // the same additions in the same order
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_max_pool2d", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, NCHW, batch " + std::to_string(kBatch) + ", wall clock");
  for (const auto& c : testing::pool_cases()) {
    if (bench::is_edge(c.name)) continue;
    Pool2dShape p = c.shape;
    p.n = kBatch;
    auto q = std::make_shared<Problem>(p);
    validate(c.name, *q);
    const std::string shape = bench::layer_of(c.name) + "/n" + std::to_string(kBatch);
    const double x = (double)p.x_size() * sizeof(float), y = (double)p.y_size() * sizeof(float);
    bench::register_timed("max_pool2d_forward/" + shape, [q] { q->forward(); }, x + y);
    bench::register_timed("max_pool2d_backward/" + shape, [q] { q->backward(); }, 2 * x + y);
  }
  return bench::run_benchmarks(argc, argv);
}
