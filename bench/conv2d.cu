// conv2d on the GPU: our implicit-GEMM kernels (kernels/cuda/conv2d*.cu) against cuDNN's best
// algorithm, for every real layer of tests/shapes.h at batch 64 and 128, in the three directions.
//
//   precision  fp32 storage and fp32 FFMA arithmetic on both sides: cuDNN's convolution
//              descriptor has CUDNN_FMA_MATH (no tensor cores, so no TF32), and only algorithms
//              that report CUDNN_FMA_MATH are accepted; scripts/gpu-check.sh also sets
//              NVIDIA_TF32_OVERRIDE=0, the driver-wide switch that forbids TF32.
//   layout     NCHW activations, KCRS filters, no bias on either side.
//   cuDNN      cudnnFind*AlgorithmEx times every algorithm with enough workspace (up to 2 GiB)
//              and the fastest FMA one is used (Winograd and FFT included: "cuDNN's best").
//   timing     CUDA events around one call on the shared stream, UseManualTime; L2 is NOT
//              flushed between iterations (both sides run warm). Ours includes its filter
//              reorder and split-reduction kernels; its tile choice is tuned before timing.
//   validate   before timing, ours is checked on 256 sampled outputs against sums in double on
//              the host (abort the case on a mismatch), and against cuDNN's full output (max
//              error relative to max |cuDNN|, reported; abort above 1e-3, a layout-level bug).
//   counters   TFLOP/s (2 flops per multiply-add, the forward count for every direction) and,
//              for ours, ratio_vs_cudnn = cuDNN time / our time measured in the same run
//              (cuDNN's benchmark of a case is registered, so run, just before ours).
// scripts/bench_cuda_table.py turns the JSON output into the table of docs/benchmarks.md.
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/cuda_bench.cuh"
#include "bench/provenance.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_cuda.h"
#include "kernels/philox.h"
#include "kernels/runtime.h"
#include "tests/shapes.h"

using namespace emotune;
using namespace emotune::bench;

namespace {

const char* dir_name(ConvDir d) {
  return d == ConvDir::forward ? "fwd" : d == ConvDir::backward_input ? "bwd_input" : "bwd_weight";
}

// The tensors of one problem: inputs random, outputs written by the op under test.
struct Problem {
  Conv2dShape p;
  DeviceTensor x, w, dy, y, dx, dw;
  explicit Problem(const Conv2dShape& s)
      : p(s), x(s.x_size(), 1), w(s.w_size(), 2), dy(s.y_size(), 3), y(s.y_size(), 4), dx(s.x_size(), 5),
        dw(s.w_size(), 6) {}
  const DeviceTensor& output(ConvDir d) const { return d == ConvDir::forward ? y : d == ConvDir::backward_input ? dx : dw; }
};

void run_ours(ConvDir d, Problem& pr) {
  switch (d) {
    case ConvDir::forward:
      return conv2d_forward_cuda(pr.p, pr.x.ptr, pr.w.ptr, nullptr, pr.y.ptr);
    case ConvDir::backward_input:
      return conv2d_backward_input_cuda(pr.p, pr.dy.ptr, pr.w.ptr, pr.dx.ptr);
    case ConvDir::backward_weight:
      return conv2d_backward_weight_cuda(pr.p, pr.x.ptr, pr.dy.ptr, pr.dw.ptr, nullptr);
  }
}

// ---- cuDNN ------------------------------------------------------------------------------------
const char* const kFwdAlgoNames[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT",
                                     "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
const char* const kBwdDataAlgoNames[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
const char* const kBwdFilterAlgoNames[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED",
                                           "FFT_TILING"};
constexpr size_t kMaxWorkspace = size_t(2) << 30;

template <size_t N>
const char* algo_name(const char* const (&names)[N], int algo) {
  return algo >= 0 && (size_t)algo < N ? names[algo] : "?";
}

struct CudnnConv {
  cudnnTensorDescriptor_t xd{}, yd{};
  cudnnFilterDescriptor_t wd{};
  cudnnConvolutionDescriptor_t cd{};
  ConvDir dir;
  int algo = -1;
  std::string name;
  size_t ws_bytes = 0;
  void* ws = nullptr;

  // known_algo >= 0: reuse the algorithm an earlier Find chose for this shape (no second Find).
  CudnnConv(ConvDir d, Problem& pr, int known_algo = -1) : dir(d) {
    const Conv2dShape& p = pr.p;
    cudnnHandle_t h = cudnn_handle();
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&xd));
    EMOTUNE_CUDA_CHECK(cudnnCreateTensorDescriptor(&yd));
    EMOTUNE_CUDA_CHECK(cudnnCreateFilterDescriptor(&wd));
    EMOTUNE_CUDA_CHECK(cudnnCreateConvolutionDescriptor(&cd));
    EMOTUNE_CUDA_CHECK(cudnnSetTensor4dDescriptor(xd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, p.n, p.c, p.h, p.w));
    EMOTUNE_CUDA_CHECK(cudnnSetFilter4dDescriptor(wd, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, p.k, p.c, p.r, p.s));
    EMOTUNE_CUDA_CHECK(cudnnSetConvolution2dDescriptor(cd, p.pad_h, p.pad_w, p.stride_h, p.stride_w, 1, 1,
                                                       CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    EMOTUNE_CUDA_CHECK(cudnnSetConvolutionMathType(cd, CUDNN_FMA_MATH));
    int n, k, oh, ow;
    EMOTUNE_CUDA_CHECK(cudnnGetConvolution2dForwardOutputDim(cd, xd, wd, &n, &k, &oh, &ow));
    if (n != p.n || k != p.k || oh != p.out_h() || ow != p.out_w())
      throw Error("cuDNN output shape differs from ours: " + std::to_string(oh) + "x" + std::to_string(ow));
    EMOTUNE_CUDA_CHECK(cudnnSetTensor4dDescriptor(yd, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, k, oh, ow));

    // The workspace: the largest any algorithm asks for, up to kMaxWorkspace.
    size_t need = 0;
    for (int a = 0; a < 8; ++a) {
      if (known_algo >= 0 && a != known_algo) continue;
      size_t s = 0;
      cudnnStatus_t st = CUDNN_STATUS_NOT_SUPPORTED;
      if (d == ConvDir::forward && a < CUDNN_CONVOLUTION_FWD_ALGO_COUNT)
        st = cudnnGetConvolutionForwardWorkspaceSize(h, xd, wd, cd, yd, (cudnnConvolutionFwdAlgo_t)a, &s);
      if (d == ConvDir::backward_input && a < CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT)
        st = cudnnGetConvolutionBackwardDataWorkspaceSize(h, wd, yd, cd, xd, (cudnnConvolutionBwdDataAlgo_t)a, &s);
      if (d == ConvDir::backward_weight && a < CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT)
        st = cudnnGetConvolutionBackwardFilterWorkspaceSize(h, xd, yd, cd, wd, (cudnnConvolutionBwdFilterAlgo_t)a, &s);
      if (st == CUDNN_STATUS_SUCCESS && s <= kMaxWorkspace) need = std::max(need, s);
    }
    ws_bytes = need;
    if (ws_bytes) EMOTUNE_CUDA_CHECK(cudaMalloc(&ws, ws_bytes));

    if (known_algo >= 0) {
      algo = known_algo;
      name = d == ConvDir::forward          ? algo_name(kFwdAlgoNames, algo)
             : d == ConvDir::backward_input ? algo_name(kBwdDataAlgoNames, algo)
                                            : algo_name(kBwdFilterAlgoNames, algo);
      return;
    }
    // Time every algorithm; keep the fastest that ran with FMA math (no tensor cores).
    int returned = 0;
    auto pick = [&](auto* perf, const auto& names) {
      for (int i = 0; i < returned; ++i) {
        if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > ws_bytes) continue;
        if (perf[i].mathType != CUDNN_FMA_MATH) continue;
        algo = (int)perf[i].algo;
        name = algo_name(names, algo);
        return;
      }
    };
    if (d == ConvDir::forward) {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      EMOTUNE_CUDA_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, xd, pr.x.ptr, wd, pr.w.ptr, cd, yd, pr.y.ptr,
                                                                CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &returned, perf,
                                                                ws, ws_bytes));
      pick(perf, kFwdAlgoNames);
    } else if (d == ConvDir::backward_input) {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      EMOTUNE_CUDA_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(h, wd, pr.w.ptr, yd, pr.dy.ptr, cd, xd, pr.dx.ptr,
                                                                     CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &returned,
                                                                     perf, ws, ws_bytes));
      pick(perf, kBwdDataAlgoNames);
    } else {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      EMOTUNE_CUDA_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(h, xd, pr.x.ptr, yd, pr.dy.ptr, cd, wd, pr.dw.ptr,
                                                                       CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                                       &returned, perf, ws, ws_bytes));
      pick(perf, kBwdFilterAlgoNames);
    }
    if (algo < 0) throw Error("cuDNN offered no FMA-math algorithm for this case");
  }

  ~CudnnConv() {
    if (ws) cudaFree(ws);
    cudnnDestroyTensorDescriptor(xd);
    cudnnDestroyTensorDescriptor(yd);
    cudnnDestroyFilterDescriptor(wd);
    cudnnDestroyConvolutionDescriptor(cd);
  }

  void run(Problem& pr) {
    const float one = 1.0f, zero = 0.0f;
    cudnnHandle_t h = cudnn_handle();
    if (dir == ConvDir::forward)
      EMOTUNE_CUDA_CHECK(cudnnConvolutionForward(h, &one, xd, pr.x.ptr, wd, pr.w.ptr, cd, (cudnnConvolutionFwdAlgo_t)algo,
                                                 ws, ws_bytes, &zero, yd, pr.y.ptr));
    else if (dir == ConvDir::backward_input)
      EMOTUNE_CUDA_CHECK(cudnnConvolutionBackwardData(h, &one, wd, pr.w.ptr, yd, pr.dy.ptr, cd,
                                                      (cudnnConvolutionBwdDataAlgo_t)algo, ws, ws_bytes, &zero, xd,
                                                      pr.dx.ptr));
    else
      EMOTUNE_CUDA_CHECK(cudnnConvolutionBackwardFilter(h, &one, xd, pr.x.ptr, yd, pr.dy.ptr, cd,
                                                        (cudnnConvolutionBwdFilterAlgo_t)algo, ws, ws_bytes, &zero, wd,
                                                        pr.dw.ptr));
  }
};

// ---- validation -------------------------------------------------------------------------------
struct Check {
  bool ok = true;
  double worst_excess = 0;  // |ours - exact| / (atol + rtol |exact|), largest over the samples
  std::string message;
};

// 256 sampled outputs against the exact sum in double of the same terms.
Check check_samples(ConvDir d, const Conv2dShape& p, const std::vector<float>& x, const std::vector<float>& w,
                    const std::vector<float>& dy, const std::vector<float>& got) {
  const int oh = p.out_h(), ow = p.out_w();
  auto X = [&](int64_t n, int64_t c, int64_t h, int64_t ww) { return (double)x[((n * p.c + c) * p.h + h) * p.w + ww]; };
  auto W = [&](int64_t k, int64_t c, int64_t r, int64_t s) { return (double)w[((k * p.c + c) * p.r + r) * p.s + s]; };
  auto DY = [&](int64_t n, int64_t k, int64_t y, int64_t xx) { return (double)dy[((n * p.k + k) * oh + y) * ow + xx]; };
  double terms = 0;
  Check out;
  const int samples = 256;
  for (int i = 0; i < samples; ++i) {
    const int64_t idx = (int64_t)(philox_uniform(77, (uint64_t)i) * (double)got.size()) % (int64_t)got.size();
    double exact = 0;
    if (d == ConvDir::forward) {
      const int64_t q = idx % ow, pp = idx / ow % oh, k = idx / ((int64_t)ow * oh) % p.k, n = idx / ((int64_t)ow * oh * p.k);
      for (int c = 0; c < p.c; ++c)
        for (int r = 0; r < p.r; ++r)
          for (int s = 0; s < p.s; ++s) {
            const int64_t h = pp * p.stride_h - p.pad_h + r, ww = q * p.stride_w - p.pad_w + s;
            if (h >= 0 && h < p.h && ww >= 0 && ww < p.w) exact += X(n, c, h, ww) * W(k, c, r, s);
          }
      terms = (double)p.c * p.r * p.s;
    } else if (d == ConvDir::backward_input) {
      const int64_t ww = idx % p.w, h = idx / p.w % p.h, c = idx / ((int64_t)p.w * p.h) % p.c,
                    n = idx / ((int64_t)p.w * p.h * p.c);
      for (int k = 0; k < p.k; ++k)
        for (int r = 0; r < p.r; ++r)
          for (int s = 0; s < p.s; ++s) {
            const int64_t th = h + p.pad_h - r, tw = ww + p.pad_w - s;
            if (th < 0 || tw < 0 || th % p.stride_h || tw % p.stride_w) continue;
            if (th / p.stride_h >= oh || tw / p.stride_w >= ow) continue;
            exact += DY(n, k, th / p.stride_h, tw / p.stride_w) * W(k, c, r, s);
          }
      terms = (double)p.k * p.r * p.s;
    } else {
      const int64_t s = idx % p.s, r = idx / p.s % p.r, c = idx / ((int64_t)p.s * p.r) % p.c,
                    k = idx / ((int64_t)p.s * p.r * p.c);
      for (int n = 0; n < p.n; ++n)
        for (int y = 0; y < oh; ++y)
          for (int xx = 0; xx < ow; ++xx) {
            const int64_t h = y * p.stride_h - p.pad_h + r, ww = xx * p.stride_w - p.pad_w + s;
            if (h >= 0 && h < p.h && ww >= 0 && ww < p.w) exact += DY(n, k, y, xx) * X(n, c, h, ww);
          }
      terms = (double)p.n * oh * ow;
    }
    // fp32 sums of `terms` products of values in [-1, 1]: the random-walk bound of the tests
    // (4 eps terms), ours being the only rounded side here.
    const double atol = 4.0 * 1.1920929e-7 * terms, rtol = 1e-5;
    const double excess = std::fabs((double)got[(size_t)idx] - exact) / (atol + rtol * std::fabs(exact));
    if (!(excess <= out.worst_excess)) {
      out.worst_excess = std::isnan(excess) ? INFINITY : excess;
      if (!(excess <= 1.0)) {
        out.ok = false;
        out.message = "output [" + std::to_string(idx) + "]: got " + std::to_string(got[(size_t)idx]) +
                      " want " + std::to_string(exact) + " (double)";
      }
    }
  }
  return out;
}

// ---- the benchmarks ---------------------------------------------------------------------------
// cuDNN's time and algorithm per case, from its benchmark, for ours that runs next.
std::map<std::string, double>& cudnn_seconds() {
  static std::map<std::string, double> m;
  return m;
}
std::map<std::string, int>& cudnn_algo() {
  static std::map<std::string, int> m;
  return m;
}

void set_common_counters(benchmark::State& state, const Conv2dShape& p, double seconds) {
  state.counters["TFLOP/s"] = seconds > 0 ? p.flops() / seconds * 1e-12 : 0;
  state.counters["batch"] = p.n;
}

void bench_cudnn(benchmark::State& state, ConvDir d, Conv2dShape p, std::string key) {
  try {
    Problem pr(p);
    CudnnConv conv(d, pr);
    conv.run(pr);  // warm-up
    const double s = time_iterations(state, [&] { conv.run(pr); });
    cudnn_seconds()[key] = s;
    cudnn_algo()[key] = conv.algo;
    set_common_counters(state, p, s);
    state.counters["workspace_MB"] = conv.ws_bytes / 1048576.0;
    state.SetLabel("cuDNN " + conv.name + " FMA");
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void bench_ours(benchmark::State& state, ConvDir d, Conv2dShape p, std::string key) {
  try {
    Problem pr(p);
    // Validate first (this also tunes the tile): against sums in double, then against cuDNN.
    run_ours(d, pr);
    const std::vector<float> ours = pr.output(d).host();
    const std::vector<float> x = pr.x.host(), w = pr.w.host(), dy = pr.dy.host();
    const Check check = check_samples(d, p, x, w, dy, ours);
    state.counters["worst_sample_err_over_tol"] = check.worst_excess;
    if (!check.ok) {
      std::fprintf(stderr, "VALIDATION FAILED %s: %s\n", key.c_str(), check.message.c_str());
      state.SkipWithError(("validation against double sums failed: " + check.message).c_str());
      return;
    }
    double rel = -1;
    {
      auto known = cudnn_algo().find(key);
      CudnnConv conv(d, pr, known != cudnn_algo().end() ? known->second : -1);
      conv.run(pr);
      rel = max_rel_error(ours, pr.output(d).host());
    }
    state.counters["max_rel_err_vs_cudnn"] = rel;
    std::printf("validated %-40s sampled worst %.3f of tolerance, max rel. error vs cuDNN %.2e\n", key.c_str(),
                check.worst_excess, rel);
    if (!(rel <= 1e-3)) {
      std::fprintf(stderr, "VALIDATION FAILED %s: max relative error vs cuDNN %.3e\n", key.c_str(), rel);
      state.SkipWithError("ours differs from cuDNN by more than 1e-3 of the output's magnitude");
      return;
    }
    run_ours(d, pr);  // warm-up after the cuDNN runs
    const double s = time_iterations(state, [&] { run_ours(d, pr); });
    set_common_counters(state, p, s);
    auto it = cudnn_seconds().find(key);
    if (it != cudnn_seconds().end() && s > 0) state.counters["ratio_vs_cudnn"] = it->second / s;
    state.SetLabel("ours " + conv2d_cuda_describe(d, p));
  } catch (const std::exception& e) {
    state.SkipWithError(e.what());
  }
}

void add_context() {
  bench::add_provenance();
  bench::add_gpu_provenance();
  const char* tf32 = std::getenv("NVIDIA_TF32_OVERRIDE");
  benchmark::AddCustomContext("precision", std::string("fp32, FFMA only (cuDNN CUDNN_FMA_MATH, no tensor cores; "
                                                       "NVIDIA_TF32_OVERRIDE=") + (tf32 ? tf32 : "unset") + ")");
  benchmark::AddCustomContext("layout", "NCHW, KCRS filters, no bias");
  benchmark::AddCustomContext("l2_flush", "no (warm L2 on both sides)");
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_cuda_conv2d", argv, /*select_cpu_path=*/false);
  benchmark::Initialize(&argc, argv);
  if (device_count_cuda() == 0) {
    std::printf("bench_cuda_conv2d: no CUDA GPU on this machine, nothing to measure\n");
    return 0;
  }
  add_context();
  for (int batch : {64, 128}) {
    for (const auto& c : testing::conv_cases()) {
      if (!c.real) continue;
      Conv2dShape p = c.shape;
      p.n = batch;
      const std::string layer = c.name.substr(0, c.name.find(' '));
      for (ConvDir d : {ConvDir::forward, ConvDir::backward_input, ConvDir::backward_weight}) {
        const std::string key = std::string(dir_name(d)) + "/" + layer + "/n" + std::to_string(batch);
        benchmark::RegisterBenchmark(("cudnn/" + key).c_str(), bench_cudnn, d, p, key)
            ->UseManualTime()
            ->Unit(benchmark::kMicrosecond)
            ->MinTime(0.1);
        benchmark::RegisterBenchmark(("ours/" + key).c_str(), bench_ours, d, p, key)
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
