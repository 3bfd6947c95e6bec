// What the CPU benchmarks share besides their provenance: seeded inputs (tests/testing.cpp is not
// linked into benchmarks), the validation that runs before anything is timed (a mismatch prints
// the worst element and exits: a wrong kernel's speed is not worth reporting), and one way to
// register a timed call.
#pragma once
#include <benchmark/benchmark.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/philox.h"

namespace emotune::bench {

// Seeded values in [lo, hi), as the tests draw them.
inline std::vector<float> uniform(int64_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::vector<float> v((size_t)n);
  for (int64_t i = 0; i < n; ++i) v[(size_t)i] = lo + (hi - lo) * philox_uniform(seed, (uint64_t)i);
  return v;
}

// |got - want| <= atol + rtol * |want| for every element, else exit(1) naming the worst one.
template <class T>
void expect_close(const std::string& what, const std::vector<float>& got, const std::vector<T>& want, double atol,
                  double rtol) {
  size_t worst = 0;
  double worst_excess = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double err = std::fabs((double)got[i] - (double)want[i]);
    const double excess = std::isnan(err) ? INFINITY : err / (atol + rtol * std::fabs((double)want[i]));
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  if (got.size() != want.size() || worst_excess > 1.0) {
    std::fprintf(stderr, "VALIDATION FAILED: %s: element %zu got %.9g want %.9g (atol %g, rtol %g)\n", what.c_str(),
                 worst, worst < got.size() ? got[worst] : NAN, (double)want[worst], atol, rtol);
    std::exit(1);
  }
}

// Registers `name`, timing fn() by wall clock (UseRealTime: the kernels use OpenMP and OpenBLAS
// threads) after one untimed warm-up call. Counters: GB/s from the bytes one call must move at
// least (0: none), GFLOP/s from its flops (0: none).
template <class Fn>
benchmark::internal::Benchmark* register_timed(const std::string& name, Fn fn, double bytes, double flops = 0) {
  return benchmark::RegisterBenchmark(name.c_str(),
                                      [fn, bytes, flops](benchmark::State& state) mutable {
                                        fn();
                                        for (auto _ : state) {
                                          fn();
                                          benchmark::ClobberMemory();
                                        }
                                        using C = benchmark::Counter;
                                        if (bytes > 0) state.counters["GB/s"] = C(bytes / 1e9, C::kIsIterationInvariantRate);
                                        if (flops > 0) state.counters["GFLOP/s"] = C(flops / 1e9, C::kIsIterationInvariantRate);
                                      })
      ->Unit(benchmark::kMicrosecond)
      ->UseRealTime();
}

// Google Benchmark's main, after the benchmarks are registered and the provenance added.
inline int run_benchmarks(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}

// "paper.pool1 64@46x46" -> "paper.pool1": the layer name of a shape-table entry.
inline std::string layer_of(const std::string& case_name) { return case_name.substr(0, case_name.find(' ')); }

// Shape-table entries named "edge ..." test corner cases; the benchmarks time the real layers.
inline bool is_edge(const std::string& case_name) { return case_name.rfind("edge", 0) == 0; }

}  // namespace emotune::bench
