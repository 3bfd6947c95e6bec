// The elementwise CPU kernels (kernels/cpu/elementwise.cpp) on the sizes they meet in training:
// the largest and the smallest conv2d output among the real layers of tests/shapes.h's conv
// table, at batch 16. Before timing, each result is checked against a plain loop here (exact:
// one float operation per element; axpy within an ulp, as it may be one fma; sum_squares within
// half an ulp of the double sum). GB/s counts the floats each op must read and write once.
//   bench_elementwise [--benchmark_filter=relu]
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/elementwise.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

constexpr int kBatch = 16;

struct Problem {
  int64_t n;
  std::vector<float> a, b, y;
  float out = 0;
  explicit Problem(int64_t count) : n(count), a(bench::uniform(count, 1)), b(bench::uniform(count, 2)), y(count) {}
};

struct Op {
  const char* name;
  int streams;                                  // floats read + written per element
  std::function<void(Problem&)> run;            // the kernel
  std::function<float(const Problem&, int64_t)> want;  // element i of y, by a plain expression
  double atol;
};

const std::vector<Op>& ops() {
  static const std::vector<Op> v = {
      {"fill", 1, [](Problem& q) { fill_cpu(q.n, 2.5f, q.y.data()); }, [](const Problem&, int64_t) { return 2.5f; }, 0},
      {"add", 3, [](Problem& q) { add_cpu(q.n, q.a.data(), q.b.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.a[i] + q.b[i]; }, 0},
      {"mul", 3, [](Problem& q) { mul_cpu(q.n, q.a.data(), q.b.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.a[i] * q.b[i]; }, 0},
      {"scale", 2, [](Problem& q) { scale_cpu(q.n, -3.0f, q.a.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return -3.0f * q.a[i]; }, 0},
      {"scale_dev", 2, [](Problem& q) { scale_dev_cpu(q.n, q.b.data(), q.a.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.b[0] * q.a[i]; }, 0},
      {"axpy", 3, [](Problem& q) { axpy_cpu(q.n, 0.5f, q.a.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.b[i] + 0.5f * q.a[i]; }, 2e-7},  // may be one fma
      {"relu_forward", 2, [](Problem& q) { relu_forward_cpu(q.n, q.a.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.a[i] > 0 ? q.a[i] : 0.0f; }, 0},
      {"relu_backward", 3, [](Problem& q) { relu_backward_cpu(q.n, q.a.data(), q.b.data(), q.y.data()); },
       [](const Problem& q, int64_t i) { return q.a[i] > 0 ? q.b[i] : 0.0f; }, 0},
  };
  return v;
}

void validate(const std::string& shape, Problem& q) {
  for (const Op& op : ops()) {
    q.y = q.b;  // axpy accumulates into y (and is timed so, y growing by at most 0.5 per call)
    op.run(q);
    std::vector<float> want(q.n);
    for (int64_t i = 0; i < q.n; ++i) want[i] = op.want(q, i);
    bench::expect_close(std::string(op.name) + "/" + shape, q.y, want, op.atol, 0);
  }
  double exact = 0;
  for (float v : q.a) exact += (double)v * v;
  sum_squares_cpu(q.n, q.a.data(), &q.out);
  bench::expect_close("sum_squares/" + shape, std::vector<float>{q.out}, std::vector<double>{exact}, 0, 6e-8);
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_elementwise", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, conv2d output sizes at batch " + std::to_string(kBatch) +
                                                     ", wall clock");
  int64_t lo = INT64_MAX, hi = 0;
  for (const auto& c : testing::conv_cases()) {
    if (!c.real) continue;
    Conv2dShape p = c.shape;
    p.n = kBatch;
    lo = std::min(lo, p.y_size());
    hi = std::max(hi, p.y_size());
  }
  for (int64_t n : {lo, hi}) {
    auto q = std::make_shared<Problem>(n);
    std::string shape = "n";
    shape += std::to_string(n);  // not "n" + ...: GCC 12 warns falsely (-Wrestrict) on that
    validate(shape, *q);
    for (const Op& op : ops())
      bench::register_timed(std::string(op.name) + "/" + shape, [q, &op] { op.run(*q); },
                            (double)op.streams * n * sizeof(float));
    bench::register_timed("sum_squares/" + shape, [q] { sum_squares_cpu(q->n, q->a.data(), &q->out); },
                          (double)n * sizeof(float));
  }
  return bench::run_benchmarks(argc, argv);
}
