// batch_norm on the GPU: ours (kernels/cuda/batch_norm.cu) against cuDNN's
// cudnnBatchNormalizationForwardTraining / cudnnBatchNormalizationBackward in spatial mode
// (per-channel statistics over N*HW, our contract in kernels/batch_norm.h), on every real shape
// of tests/shapes.h's batch_norm table at batch 64 and 128, training forward and backward.
//
//   precision  fp32 storage; ours accumulates in double, cuDNN in its own way (fp32).
//   layout     x, y, dy, dx NCHW viewed as [N, C, HW, 1]; gamma, beta, statistics [1, C, 1, 1].
//              eps 1e-3 (Keras' default, above CUDNN_BN_MIN_EPSILON), momentum 0.01.
//   timing     CUDA events around one call on the shared stream, UseManualTime; L2 is NOT
//              flushed between iterations (both sides run warm).
//   validate   before timing, both run on the same inputs and every output is compared: y,
//              save_mean, save_invstd, the running mean and variance (unbiased, both), dx,
//              dgamma, dbeta; max error relative to max |cuDNN| per tensor, reported, the case
//              aborted above 1e-4 (fp32 sums in another order stay near 1e-6; a formula or
//              layout error is of order 1).
//   counters   GB/s = the minimum traffic (forward: read x, write y; backward: read x and dy,
//              write dx; the per-channel vectors are negligible) per second, and for ours
//              ratio_vs_cudnn = cuDNN time / our time in the same run (cuDNN's case runs first).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/cuda_bench.cuh"
#include "bench/provenance.h"
#include "kernels/batch_norm.h"
#include "tests/shapes.h"

using namespace emotune;
using namespace emotune::bench;

namespace {

constexpr float kEpsBn = 1e-3f, kMomentum = 0.01f;
enum class Dir { forward, backward };

// The tensors of one problem; inputs random, everything else written by the op under test.
struct Problem {
  BatchNormShape p;
  DeviceTensor x, dy, gamma, beta, rmean, rvar, y, mean, invstd, dx, dgamma, dbeta;
  explicit Problem(const BatchNormShape& s)
      : p(s), x(s.size(), 1, 2.0f, 4.0f), dy(s.size(), 2), gamma(s.c, 3, 0.5f, 1.5f), beta(s.c, 4),
        rmean(s.c, 5), rvar(s.c, 6, 0.5f, 2.0f), y(s.size(), 7), mean(s.c, 8), invstd(s.c, 9), dx(s.size(), 10),
        dgamma(s.c, 11), dbeta(s.c, 12) {}
  // The running statistics before a validation run, so both sides start from the same values.
  void reset_running() {
    rmean.upload(DeviceTensor(p.c, 5).host());
    rvar.upload(DeviceTensor(p.c, 6, 0.5f, 2.0f).host());
  }
};

void run_ours(Dir d, Problem& q) {
  if (d == Dir::forward)
    batch_norm_forward_train_cuda(q.p, q.x.ptr, q.gamma.ptr, q.beta.ptr, kEpsBn, kMomentum, q.rmean.ptr, q.rvar.ptr,
                                  q.y.ptr, q.mean.ptr, q.invstd.ptr);
  else
    batch_norm_backward_cuda(q.p, q.x.ptr, q.dy.ptr, q.gamma.ptr, q.mean.ptr, q.invstd.ptr, q.dx.ptr, q.dgamma.ptr,
                             q.dbeta.ptr);
}

struct CudnnBn {
  cudnnTensorDescriptor_t xd{}, cd{};
  CudnnBn(const BatchNormShape& p) {
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&xd));
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&cd));
    EMOTUNE_CUDA_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c, p.hw, 1));
    EMOTUNE_CUDA_CHECK(cudnnDeriveBNTensorDescriptor(cd, xd, CUDNN_BATCHNORM_SPATIAL));
  }
  ~CudnnBn() {
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(cd);
  }
  void run(Dir d, Problem& q) {
    const float one = 1.0f, zero = 0.0f;
    if (d == Dir::forward)
      EMOTUNE_CUDA_CHECK(cudnnBatchNormalizationForwardTraining(
          cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, xd, q.x.ptr, xd, q.y.ptr, cd, q.gamma.ptr, q.beta.ptr,
          kMomentum, q.rmean.ptr, q.rvar.ptr, kEpsBn, q.mean.ptr, q.invstd.ptr));
    else
      EMOTUNE_CUDA_CHECK(cudnnBatchNormalizationBackward(cudnn_handle(), CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one,
                                                         &zero, xd, q.x.ptr, xd, q.dy.ptr, xd, q.dx.ptr, cd,
                                                         q.gamma.ptr, q.dgamma.ptr, q.dbeta.ptr, kEpsBn, q.mean.ptr,
                                                         q.invstd.ptr));
  }
};

// Every output of one forward + backward, ours or cuDNN's, from the same inputs.
std::map<std::string, std::vector<float>> outputs(Problem& q, CudnnBn* cudnn) {
  q.reset_running();
  for (Dir d : {Dir::forward, Dir::backward}) cudnn ? cudnn->run(d, q) : run_ours(d, q);
  return {{"y", q.y.host()},           {"save_mean", q.mean.host()}, {"save_invstd", q.invstd.host()},
          {"running_mean", q.rmean.host()}, {"running_var", q.rvar.host()}, {"dx", q.dx.host()},
          {"dgamma", q.dgamma.host()}, {"dbeta", q.dbeta.host()}};
}

void set_counters(benchmark::State& state, Dir d, const BatchNormShape& p, double seconds) {
  const double bytes = (d == Dir::forward ? 2.0 : 3.0) * (double)p.size() * sizeof(float);
  state.counters["GB/s"] = seconds > 0 ? bytes / seconds * 1e-9 : 0;
  state.counters["batch"] = p.n;
}

void bench_bn(benchmark::State& state, bool ours, Dir d, BatchNormShape p, std::string key) {
  try {
    Problem q(p);
    CudnnBn cudnn(p);
    if (ours) {  // validate first: every output of ours against cuDNN's
      const auto mine = outputs(q, nullptr), theirs = outputs(q, &cudnn);
      double worst = 0;
      for (const auto& [name, want] : theirs) {
        const double rel = max_rel_error(mine.at(name), want);
        worst = std::max(worst, rel);
        if (!(rel <= 1e-4)) {
          std::fprintf(stderr, "VALIDATION FAILED %s: %s max relative error vs cuDNN %.3e\n", key.c_str(),
                       name.c_str(), rel);
          state.SkipWithError((name + " differs from cuDNN by more than 1e-4 of its magnitude").c_str());
          return;
        }
      }
      state.counters["max_rel_err_vs_cudnn"] = worst;
      std::printf("validated %-36s max rel. error vs cuDNN %.2e (worst of 8 tensors)\n", key.c_str(), worst);
      if (d == Dir::backward) run_ours(Dir::forward, q);  // backward reads this forward's statistics
    } else if (d == Dir::backward) {
      cudnn.run(Dir::forward, q);
    }
    auto run = [&] { ours ? run_ours(d, q) : cudnn.run(d, q); };
    run();  // warm-up
    const double s = time_iterations(state, run);
    set_counters(state, d, p, s);
    record_vs_cudnn(state, ours, key, s, "cuDNN spatial");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_cuda_batch_norm", argv, /*select_cpu_path=*/false);
  benchmark::Initialize(&argc, argv);
  if (device_count_cuda() == 0) {
    std::printf("bench_cuda_batch_norm: no CUDA GPU on this machine, nothing to measure\n");
    return 0;
  }
  add_provenance();
  add_gpu_provenance();
  benchmark::AddCustomContext("precision", "fp32 (ours accumulates in double)");
  benchmark::AddCustomContext("layout", "NCHW as [N, C, HW, 1], spatial batch norm, eps 1e-3, momentum 0.01");
  benchmark::AddCustomContext("l2_flush", "no (warm L2 on both sides)");
  for (int batch : {64, 128}) {
    for (const auto& c : testing::batch_norm_cases()) {
      if (c.name.rfind("edge", 0) == 0) continue;
      BatchNormShape p = c.shape;
      p.n = batch;
      const std::string layer = c.name.substr(0, c.name.find(' '));
      for (Dir d : {Dir::forward, Dir::backward}) {
        const std::string key = std::string(d == Dir::forward ? "fwd" : "bwd") + "/" + layer + "/n" + std::to_string(batch);
        for (bool ours : {false, true})
          benchmark::RegisterBenchmark(((ours ? "ours/" : "cudnn/") + key).c_str(), bench_bn, ours, d, p, key)
              ->UseManualTime()
              ->Unit(benchmark::kMicrosecond)
              ->MinTime(0.1);
      }
    }
  }
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
