// max_pool2d on the GPU: ours (kernels/cuda/max_pool2d.cu) against cuDNN's cudnnPoolingForward /
// cudnnPoolingBackward (CUDNN_POOLING_MAX, NaN propagated as ours does), on every real shape of
// tests/shapes.h's pool table at batch 64 and 128, forward and backward.
//
//   precision  fp32; pooling selects and routes values, so both sides must agree exactly.
//   layout     NCHW x [N, C, H, W] and y [N, C, OH, OW]; no padding, floor output size (the
//              output shape cuDNN reports is checked against ours).
//   inputs     x = a permutation of multiples of 2^-23 in [-1, 1): no two elements of a window
//              are equal, so the maximum (and where backward sends dy) is unambiguous; on ties
//              the two libraries may pick different elements.
//   timing     CUDA events around one call on the shared stream, UseManualTime; L2 is NOT
//              flushed between iterations (both sides run warm). Ours recomputes the argmax in
//              backward from x; cuDNN reads x and y.
//   validate   before timing, y and dx of ours against cuDNN's on the same inputs: max error
//              relative to max |cuDNN|, reported; the case is aborted unless it is 0 (the real
//              shapes have non-overlapping windows: each dx is one copied dy or 0).
//   counters   GB/s = the minimum traffic (forward: read x, write y; backward: read x and dy,
//              write dx) per second, and for ours ratio_vs_cudnn = cuDNN time / our time in the
//              same run (cuDNN's case runs first).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "base/error.h"
#include "bench/cuda_bench.cuh"
#include "bench/provenance.h"
#include "kernels/max_pool2d.h"
#include "tests/shapes.h"

using namespace emotune;
using namespace emotune::bench;

namespace {

enum class Dir { forward, backward };

// Element i gets (i * odd mod 2^24) / 2^23 - 1: distinct for 2^24 consecutive elements, exact in
// float.
__global__ void fill_distinct_kernel(int64_t n, float* p) {
  EMOTUNE_GRID_STRIDE(i, n) p[i] = (float)(((uint64_t)i * 2654435761ull) & 0xFFFFFFull) / 8388608.0f - 1.0f;
}

struct Problem {
  Pool2dShape p;
  DeviceTensor x, dy, y, dx;
  explicit Problem(const Pool2dShape& s) : p(s), x(s.x_size(), 1), dy(s.y_size(), 2), y(s.y_size(), 3), dx(s.x_size(), 4) {
    fill_distinct_kernel<<<grid_for(x.count, 256), 256, 0, cuda_stream()>>>(x.count, x.ptr);
    EMOTUNE_LAUNCH_CHECK();
  }
};

void run_ours(Dir d, Problem& q) {
  if (d == Dir::forward) max_pool2d_forward_cuda(q.p, q.x.ptr, q.y.ptr);
  else max_pool2d_backward_cuda(q.p, q.x.ptr, q.dy.ptr, q.dx.ptr);
}

struct CudnnPool {
  cudnnTensorDescriptor_t xd{}, yd{};
  cudnnPoolingDescriptor_t pd{};
  explicit CudnnPool(const Pool2dShape& p) {
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&xd));
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&yd));
    EMOTUNE_CUDA_CHECK(cudnnCreatePoolingDescriptor(&pd));
    EMOTUNE_CUDA_CHECK(cudnnSetPooling2dDescriptor(pd, CUDNN_POOLING_MAX, CUDNN_PROPAGATE_NAN, p.kh, p.kw, 0, 0,
                                                   p.stride_h, p.stride_w));
    EMOTUNE_CUDA_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c, p.h, p.w));
    int n, c, oh, ow;
    EMOTUNE_CUDA_CHECK(cudnnGetPooling2dForwardOutputDim(pd, xd, &n, &c, &oh, &ow));
    if (n != p.n || c != p.c || oh != p.out_h() || ow != p.out_w())
      throw Error("cuDNN pooling output shape differs from ours: " + std::to_string(oh) + "x" + std::to_string(ow));
    EMOTUNE_CUDA_CHECK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, oh, ow));
  }
  ~CudnnPool() {
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyPoolingDescriptor(pd);
  }
  void run(Dir d, Problem& q) {
    const float one = 1.0f, zero = 0.0f;
    if (d == Dir::forward)
      EMOTUNE_CUDA_CHECK(cudnnPoolingForward(cudnn_handle(), pd, &one, xd, q.x.ptr, &zero, yd, q.y.ptr));
    else  // y must be the forward's output of this x: run() of the forward comes first
      EMOTUNE_CUDA_CHECK(cudnnPoolingBackward(cudnn_handle(), pd, &one, yd, q.y.ptr, yd, q.dy.ptr, xd, q.x.ptr,
                                              &zero, xd, q.dx.ptr));
  }
};

void bench_pool(benchmark::State& state, bool ours, Dir d, Pool2dShape p, std::string key) {
  try {
    Problem q(p);
    CudnnPool cudnn(p);
    if (ours) {  // validate first: y and dx of ours against cuDNN's
      run_ours(Dir::forward, q);
      run_ours(Dir::backward, q);
      const std::vector<float> y = q.y.host(), dx = q.dx.host();
      cudnn.run(Dir::forward, q);
      cudnn.run(Dir::backward, q);
      const double ey = max_rel_error(y, q.y.host()), edx = max_rel_error(dx, q.dx.host());
      state.counters["max_rel_err_vs_cudnn"] = std::max(ey, edx);
      std::printf("validated %-36s max rel. error vs cuDNN: y %.2e, dx %.2e\n", key.c_str(), ey, edx);
      if (!(ey == 0 && edx == 0)) {
        std::fprintf(stderr, "VALIDATION FAILED %s: y %.3e, dx %.3e relative to cuDNN\n", key.c_str(), ey, edx);
        state.SkipWithError("ours differs from cuDNN (selection or routing)");
        return;
      }
    } else {
      cudnn.run(Dir::forward, q);  // backward reads y
    }
    auto run = [&] { ours ? run_ours(d, q) : cudnn.run(d, q); };
    run();  // warm-up
    const double s = time_iterations(state, run);
    const double bytes = (d == Dir::forward ? (double)(p.x_size() + p.y_size()) : (double)(2 * p.x_size() + p.y_size())) *
                         sizeof(float);
    state.counters["GB/s"] = s > 0 ? bytes / s * 1e-9 : 0;
    state.counters["batch"] = p.n;
    record_vs_cudnn(state, ours, key, s, "cuDNN POOLING_MAX");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_cuda_max_pool2d", argv, /*select_cpu_path=*/false);
  benchmark::Initialize(&argc, argv);
  if (device_count_cuda() == 0) {
    std::printf("bench_cuda_max_pool2d: no CUDA GPU on this machine, nothing to measure\n");
    return 0;
  }
  add_provenance();
  add_gpu_provenance();
  benchmark::AddCustomContext("precision", "fp32 (selection: exact)");
  benchmark::AddCustomContext("layout", "NCHW, no padding, floor output size");
  benchmark::AddCustomContext("l2_flush", "no (warm L2 on both sides)");
  for (int batch : {64, 128}) {
    for (const auto& c : testing::pool_cases()) {
      if (c.name.rfind("edge", 0) == 0) continue;
      Pool2dShape p = c.shape;
      p.n = batch;
      const std::string layer = c.name.substr(0, c.name.find(' '));
      for (Dir d : {Dir::forward, Dir::backward}) {
        const std::string key = std::string(d == Dir::forward ? "fwd" : "bwd") + "/" + layer + "/n" + std::to_string(batch);
        for (bool ours : {false, true})
          benchmark::RegisterBenchmark(((ours ? "ours/" : "cudnn/") + key).c_str(), bench_pool, ours, d, p, key)
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
