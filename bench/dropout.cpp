// Dropout on the CPU (kernels/cpu/dropout.cpp), forward and backward (both regenerate the Philox
// mask), p = 0.5, on the activations it is applied to: the inputs of the dense layers of
// tests/shapes.h's linear table at batch 128. Before timing, every element is checked against
// the contract of kernels/dropout.h computed here (kept iff philox_uniform(seed, offset + i) >= p,
// then scaled by 1 / (1 - p)): exact. GB/s counts one read and one write of n floats.
//   bench_dropout
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/dropout.h"
#include "kernels/philox.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

constexpr int kBatch = 128;
constexpr float kP = 0.5f;
constexpr uint64_t kSeed = 1234, kOffset = 99;

struct Problem {
  int64_t n;
  std::vector<float> x, y;
  explicit Problem(int64_t count) : n(count), x(bench::uniform(count, 1)), y(count) {}
  void forward() { dropout_forward_cpu(n, x.data(), kP, kSeed, kOffset, y.data()); }
  void backward() { dropout_backward_cpu(n, x.data(), kP, kSeed, kOffset, y.data()); }  // x stands in for dy
};

void validate(const std::string& name, Problem& q) {
  const float scale = 1.0f / (1.0f - kP);
  std::vector<float> want(q.n);
  for (int64_t i = 0; i < q.n; ++i)
    want[i] = philox_uniform(kSeed, kOffset + (uint64_t)i) >= kP ? q.x[i] * scale : 0.0f;
  q.forward();
  bench::expect_close(name + " forward", q.y, want, 0, 0);  // one multiply by the same scale
  q.backward();
  bench::expect_close(name + " backward", q.y, want, 0, 0);  // the same mask and product
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_dropout", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, p 0.5, batch " + std::to_string(kBatch) + ", wall clock");
  for (const auto& c : testing::linear_cases()) {
    if (bench::is_edge(c.name)) continue;
    const int64_t n = (int64_t)kBatch * c.shape.in;
    auto q = std::make_shared<Problem>(n);
    const std::string shape = bench::layer_of(c.name) + "_input/n" + std::to_string(kBatch);
    validate(shape, *q);
    bench::register_timed("dropout_forward/" + shape, [q] { q->forward(); }, 2.0 * n * sizeof(float));
    bench::register_timed("dropout_backward/" + shape, [q] { q->backward(); }, 2.0 * n * sizeof(float));
  }
  return bench::run_benchmarks(argc, argv);
}
