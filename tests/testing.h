// Test helpers shared by every suite: seeded random fills, allclose with the worst element
// reported, the message of a thrown emotune::Error, finite-difference gradients in double, paths
// to fixtures and ../shared, and a visible skip for CUDA tests without a GPU.
#pragma once
#include <limits>
#include <sys/types.h>

#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace emotune::testing {

// Deterministic uniform values in [lo, hi) from a seed (Philox; same on every machine).
// float's machine epsilon, in double: tolerances are written as multiples of it.
inline constexpr double kFloatEps = std::numeric_limits<float>::epsilon();

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

// The same bound in double, for gradient checks: sets *ok (false also when the sizes differ) and
// returns "3 of 100 differ; worst at [17]: got 1.2 want 1.0".
std::string close_double(const std::vector<double>& got, const std::vector<double>& want,
                         double atol, double rtol, bool* ok);

// Central differences (loss(v + h) - loss(v - h)) / 2h of loss() with respect to every `step`-th
// element of v (step 1: all of them); each element is restored before the next is perturbed.
template <typename F>
std::vector<double> numeric_grad(std::vector<double>& v, F loss, size_t step, double h) {
  std::vector<double> g;
  for (size_t i = 0; i < v.size(); i += step) {
    const double keep = v[i];
    v[i] = keep + h;
    const double lp = loss();
    v[i] = keep - h;
    const double lm = loss();
    v[i] = keep;
    g.push_back((lp - lm) / (2 * h));
  }
  return g;
}

// v[0], v[step], v[2 step], ...: the analytic gradient at the elements numeric_grad perturbed.
std::vector<double> every(const std::vector<double>& v, size_t step);

// sum a[i] b[i]: gradient checks use L = dot(y, r) with random r, so dL/dy = r.
double dot(const std::vector<double>& a, const std::vector<double>& b);

// The message of the emotune::Error thrown by f, or "" when f does not throw one (any other
// exception propagates and fails the test).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

// True when `part` occurs in s: error messages are checked for the field they name, not verbatim.
bool contains(const std::string& s, const std::string& part);
// Same size and the same bits (NaN payloads and signed zeros included).
bool bit_equal(const std::vector<float>& a, const std::vector<float>& b);

std::string source_dir();          // the repository root
std::string shared_dir();          // ../shared beside the repository (may not exist)
bool shared_available();           // ../shared/data exists
std::string temp_dir(const std::string& name);  // a fresh empty folder under the build tree

// A generated fer2013.csv for training tests: 7 classes of synthetic faces, class c a bright
// horizontal band at rows [6c, 6c+6) over Philox noise; `train_rows` Training rows then
// `val_rows` PublicTest rows, labels cycling 0..6. Returns the path (dir/tiny.csv).
std::string write_synthetic_csv(const std::string& dir, int train_rows, int val_rows);

// The emotune executable of this build tree.
std::string emotune_binary();

// `emotune <args>` through the shell (args may hold quotes and redirections of its own), stdout to
// `out` and stderr to `out`.err. Returns the exit code, or 128 + the signal when it was killed, so
// that a crash never reads as a clean refusal: check for the code expected (1: emotune::Error).
int run_emotune(const std::string& args, const std::string& out);

// Runs argv[0] with `args` in a child process and waits for it. stderr (and stdout) go to
// `log_path`, or to /dev/null when it is empty; `before_exec` runs in the child just before
// exec (set limits, drop privileges). Returns the raw waitpid status.
struct SpawnOptions {
  std::string log_path;
  void (*before_exec)() = nullptr;
};
pid_t spawn(const std::vector<std::string>& args, const SpawnOptions& options = {});
int wait_status(pid_t pid);
int run_command(const std::vector<std::string>& args, const SpawnOptions& options = {});
std::string read_text(const std::string& path);

// True when a CUDA device can run kernels; otherwise prints "SKIPPED (no GPU): <what>" once per
// call so a CUDA test never passes silently.
bool cuda_or_skip(const char* what);
// How many cuda_or_skip calls skipped in this process (the test main turns > 0 into exit code 77).
int skipped_for_no_gpu();
// True when this CPU has the instruction set a test needs (`has`); otherwise prints
// "SKIPPED (no <isa>): <what>" and counts as a skip like cuda_or_skip (exit code 77).
bool isa_or_skip(bool has, const char* isa, const char* what);

}  // namespace emotune::testing

#define EMOTUNE_CHECK_CLOSE(report) \
  do {                              \
    auto _r = (report);             \
    INFO(_r.message);               \
    CHECK(_r.ok);                   \
  } while (0)
