// Softmax cross-entropy on the CPU (kernels/cpu/cross_entropy.cpp), loss and gradient fused in one
// call, on the logits the networks produce: FER-2013 (7 classes, one-hot targets) and FER+
// (8 classes, vote distributions), with class weights and label smoothing 0.1, at batch 16 and
// 128. Before timing, loss and gradient are checked against the reference in double
// (kernels/cpu/cross_entropy_ref.h) with the tests' tolerances.
//   bench_cross_entropy
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/cpu/cross_entropy_ref.h"
#include "kernels/cross_entropy.h"

using namespace emotune;

namespace {

constexpr float kSmoothing = 0.1f;

struct Problem {
  CrossEntropyShape p;
  std::vector<float> z, t, w, dz;
  float loss = 0;
  Problem(int n, int c, bool soft)
      : p{n, c}, z(bench::uniform((int64_t)n * c, 1, -4, 4)), t((size_t)n * c, 0.0f),
        w(bench::uniform(c, 3, 0.5f, 2.0f)), dz((size_t)n * c) {
    const std::vector<float> u = bench::uniform((int64_t)n * c, 2, 0, 1);
    for (int i = 0; i < n; ++i) {
      float s = 0;
      for (int j = 0; j < c; ++j) s += u[i * c + j];
      for (int j = 0; j < c; ++j) t[i * c + j] = soft ? u[i * c + j] / s : (float)(j == i % c);
    }
  }
  void run() { softmax_cross_entropy_cpu(p, z.data(), t.data(), w.data(), kSmoothing, &loss, dz.data()); }
};

void validate(const std::string& name, Problem& q) {
  q.run();
  const std::vector<double> z(q.z.begin(), q.z.end()), t(q.t.begin(), q.t.end()), w(q.w.begin(), q.w.end());
  std::vector<double> dz(q.dz.size());
  double loss = 0;
  softmax_cross_entropy_ref<double>(q.p, z.data(), t.data(), w.data(), (double)kSmoothing, &loss, dz.data());
  bench::expect_close(name + " loss", std::vector<float>{q.loss}, std::vector<double>{loss}, 0, 1e-6);  // one rounding
  bench::expect_close(name + " dlogits", q.dz, dz, 1e-8, 1e-6);  // one rounding of each gradient
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_cross_entropy", argv, /*select_cpu_path=*/false);
  bench::add_provenance();
  benchmark::AddCustomContext("emotune_problem", "fp32 logits [N, C], class weights, label smoothing 0.1, wall clock");
  for (int batch : {16, 128}) {
    for (bool soft : {false, true}) {
      const int classes = soft ? 8 : 7;
      auto q = std::make_shared<Problem>(batch, classes, soft);
      const std::string name = std::string(soft ? "ferplus_votes" : "fer2013_onehot") + "/c" +
                               std::to_string(classes) + "/n" + std::to_string(batch);
      validate(name, *q);
      // Least traffic: read logits and targets, write the gradient.
      bench::register_timed("softmax_cross_entropy/" + name, [q] { q->run(); }, 3.0 * batch * classes * sizeof(float));
    }
  }
  return bench::run_benchmarks(argc, argv);
}
