// CPU conv2d benchmark: the im2col + OpenBLAS fast path against the reference loops, measured in
// the same run, on every real layer shape of the shared table (tests/shapes.h) at batch 16, fp32,
// NCHW / KCRS, forward, backward-input and backward-weight. --no_ref_backward skips timing the
// reference backward kernels (about half of the run's ~70 s on 2 cores).
//
// Each fast-path result is validated against the reference before anything is timed (a mismatch
// aborts with the worst element): forward and backward-input per image on the first and last
// image of the batch (the images are independent), backward-weight on the whole batch.
//
// Counters: GFLOP/s (2 * multiply-adds, cuDNN's count), and on fast-path rows x_ref = the ratio to
// the reference's GFLOP/s for the same op and shape when the reference ran earlier in this run.
// Wall-clock time (UseRealTime): the kernels use OpenMP and OpenBLAS threads. Fast-path rows are
// the median of three repetitions; the slow reference runs twice, once.
// On a machine shared with other jobs, run it at high priority so that their load does not land
// in the numbers:  nice -n -20 build-cpu/bin/bench_conv2d ...
//
//   build-cpu/bin/bench_conv2d --benchmark_out_format=json --benchmark_out=/tmp/conv2d_cpu.json
//   python3 scripts/bench_table.py /tmp/conv2d_cpu.json --variant '/(fast|ref)/' --baseline ref
#include <benchmark/benchmark.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/conv2d.h"
#include "tests/shapes.h"

using namespace emotune;

namespace {

constexpr int kBatch = 16;
bool g_ref_backward = true;
bool g_edges = false;

enum class Op { forward, backward_input, backward_weight };
const char* op_name(Op op) {
  return op == Op::forward ? "conv2d_forward" : op == Op::backward_input ? "conv2d_backward_input"
                                                                         : "conv2d_backward_weight";
}

struct Problem {
  Conv2dShape p;
  std::vector<float> x, w, b, dy;
  std::vector<float> y, dx, dw, db;
  explicit Problem(Conv2dShape shape) : p(shape) {
    x = bench::uniform(p.x_size(), 1);
    w = bench::uniform(p.w_size(), 2);
    b = bench::uniform(p.k, 3);
    dy = bench::uniform(p.y_size(), 4);
    y.resize(p.y_size());
    dx.resize(p.x_size());
    dw.resize(p.w_size());
    db.resize(p.k);
  }
  void run(Op op, bool fast) {
    switch (op) {
      case Op::forward:
        (fast ? conv2d_forward_cpu : conv2d_forward_ref_cpu)(p, x.data(), w.data(), b.data(), y.data());
        break;
      case Op::backward_input:
        (fast ? conv2d_backward_input_cpu : conv2d_backward_input_ref_cpu)(p, dy.data(), w.data(), dx.data());
        break;
      case Op::backward_weight:
        (fast ? conv2d_backward_weight_cpu : conv2d_backward_weight_ref_cpu)(p, x.data(), dy.data(), dw.data(),
                                                                             db.data());
        break;
    }
  }
};

// The tests' parity bound (tests/test_conv2d.cpp): 4 float eps per summed term + 1e-5 rel.
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<float>& want,
                  double terms) {
  const double atol = 4.0 * 1.1920929e-7 * terms, rtol = 1e-5;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs((double)got[i] - want[i]);
    if (!(err <= atol + rtol * std::fabs(want[i]))) {
      std::fprintf(stderr, "VALIDATION FAILED: %s: element %zu got %g want %g (atol %g, rtol %g)\n",
                   what.c_str(), i, got[i], want[i], atol, rtol);
      std::exit(1);
    }
  }
}

// Fast path at the benchmark batch against the reference (see the header comment).
void validate(const std::string& name, Problem& pr) {
  const Conv2dShape& p = pr.p;
  pr.run(Op::forward, true);
  pr.run(Op::backward_input, true);
  pr.run(Op::backward_weight, true);
  Conv2dShape one = p;
  one.n = 1;
  const int64_t xs = one.x_size(), ys = one.y_size();
  for (int n : {0, p.n - 1}) {
    std::vector<float> y(ys), dx(xs);
    conv2d_forward_ref_cpu(one, pr.x.data() + n * xs, pr.w.data(), pr.b.data(), y.data());
    expect_close(name + " forward image " + std::to_string(n),
                 std::vector<float>(pr.y.begin() + n * ys, pr.y.begin() + (n + 1) * ys), y, p.c * p.r * p.s + 1);
    conv2d_backward_input_ref_cpu(one, pr.dy.data() + n * ys, pr.w.data(), dx.data());
    expect_close(name + " backward_input image " + std::to_string(n),
                 std::vector<float>(pr.dx.begin() + n * xs, pr.dx.begin() + (n + 1) * xs), dx, p.k * p.r * p.s);
  }
  std::vector<float> dw(p.w_size()), db(p.k);
  conv2d_backward_weight_ref_cpu(p, pr.x.data(), pr.dy.data(), dw.data(), db.data());
  const double terms = (double)p.n * p.out_h() * p.out_w();
  expect_close(name + " backward_weight dw", pr.dw, dw, terms);
  expect_close(name + " backward_weight db", pr.db, db, terms);
}

std::map<std::string, double> g_ref_gflops;  // "<op>/<shape>" -> reference GFLOP/s in this run

void bench_op(benchmark::State& state, Problem* pr, Op op, bool fast, std::string key) {
  const double flops = pr->p.flops();
  if (fast) pr->run(op, fast);  // warm thread pools, scratch buffers and caches (the slow reference needs none)
  auto t0 = std::chrono::steady_clock::now();
  for (auto _ : state) {
    pr->run(op, fast);
    benchmark::ClobberMemory();
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double gflops = flops * (double)state.iterations() / secs / 1e9;
  state.counters["GFLOP/s"] = benchmark::Counter(flops / 1e9, benchmark::Counter::kIsIterationInvariantRate);
  if (!fast) {
    g_ref_gflops[key] = gflops;
  } else if (auto it = g_ref_gflops.find(key); it != g_ref_gflops.end()) {
    state.counters["x_ref"] = gflops / it->second;
  }
}

std::string sanitize(std::string s) {
  for (char& c : s)
    if (c == ' ') c = '_';
  return s;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_conv2d", argv, /*select_cpu_path=*/false);
  // Own flags first; the rest go to Google Benchmark.
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--no_ref_backward") == 0) g_ref_backward = false;
    else if (std::strcmp(argv[i], "--edges") == 0) g_edges = true;
    else rest.push_back(argv[i]);
  }
  int rest_argc = (int)rest.size();

  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32, NCHW x KCRS, batch " + std::to_string(kBatch) +
                                                     ", GFLOP/s = 2*MACs/s, wall clock");

  static std::vector<std::unique_ptr<Problem>> problems;  // alive until the benchmarks have run
  for (const auto& cs : testing::conv_cases()) {
    if (!cs.real && !g_edges) continue;
    Conv2dShape p = cs.shape;
    p.n = kBatch;
    const std::string shape = sanitize(cs.name) + "/n" + std::to_string(kBatch);
    problems.push_back(std::make_unique<Problem>(p));
    Problem* pr = problems.back().get();
    validate(cs.name, *pr);
    for (Op op : {Op::forward, Op::backward_input, Op::backward_weight}) {
      const std::string key = std::string(op_name(op)) + "/" + shape;
      const bool with_ref = op == Op::forward || g_ref_backward;
      if (with_ref) {  // the reference is slow (~1 GFLOP/s): a fixed two iterations
        benchmark::RegisterBenchmark((std::string(op_name(op)) + "/ref/" + shape).c_str(), bench_op, pr, op, false, key)
            ->Iterations(2)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
      }
      benchmark::RegisterBenchmark((std::string(op_name(op)) + "/fast/" + shape).c_str(), bench_op, pr, op, true, key)
          ->MinTime(0.3)
          ->Repetitions(3)  // the median of three damps other jobs on a shared machine
          ->ReportAggregatesOnly(true)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }

  benchmark::Initialize(&rest_argc, rest.data());
  if (benchmark::ReportUnrecognizedArguments(rest_argc, rest.data())) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
