// Test helpers shared by every suite: seeded random fills, allclose with the worst element
// reported, paths to fixtures and ../shared, and a visible skip for CUDA tests without a GPU.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace emotune::testing {

// Deterministic uniform values in [lo, hi) from a seed (Philox; same on every machine).
std::vector<float> random_vector(size_t n, uint64_t seed, float lo = -1.0f, float hi = 1.0f);
std::vector<double> random_vector_double(size_t n, uint64_t seed, double lo = -1.0, double hi = 1.0);

struct CloseReport {
  bool ok = true;
  size_t worst_index = 0;
  double worst_excess = 0;  // |a - b| - (atol + rtol |b|), largest over all elements
  double worst_got = 0, worst_want = 0;
  size_t mismatches = 0;
  std::string message;  // "3 of 100 elements differ; worst at [17]: got 1.2 want 1.0 (atol .. rtol ..)"
};

// |got - want| <= atol + rtol * |want| for every element; NaN anywhere is a mismatch.
CloseReport allclose(const float* got, const float* want, size_t n, double atol, double rtol);
CloseReport allclose(const std::vector<float>& got, const std::vector<float>& want, double atol,
                     double rtol);

std::string source_dir();          // the repository root
std::string shared_dir();          // ../shared beside the repository (may not exist)
bool shared_available();           // ../shared/data exists
std::string temp_dir(const std::string& name);  // a fresh empty folder under the build tree

// True when a CUDA device can run kernels; otherwise prints "SKIPPED (no GPU): <what>" once per
// call so a CUDA test never passes silently.
bool cuda_or_skip(const char* what);
// How many cuda_or_skip calls skipped in this process (the test main turns > 0 into exit code 77).
int skipped_for_no_gpu();

}  // namespace emotune::testing

#define EMOTUNE_CHECK_CLOSE(report) \
  do {                              \
    auto _r = (report);             \
    INFO(_r.message);               \
    CHECK(_r.ok);                   \
  } while (0)
