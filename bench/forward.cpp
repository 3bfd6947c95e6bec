// Network forward on the CPU, batch by batch, timed the way bench/vs_onnxruntime.py times ONNX
// Runtime in the same run: a model, a batch size and a thread count; random inputs in [0, 1);
// warm-up calls, then the median and minimum wall time of --iters calls. Prints one JSON object
// per line (the script reads it):
//   bench_forward --model models/paper.safetensors --batch 1 --threads 1 [--graph inference|training]
//                 [--conv auto|im2col|winograd] [--iters 30] [--warmup 5]
//                 [--precision fp32|bf16|auto] [--bf16-kernel amx|avx512-bf16]
// --graph training runs the autograd modules in eval mode (what predict ran before the inference
// graph); --conv forces the inference graph's convolution algorithm.
#include <algorithm>
#include <chrono>
#include <ctime>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/runtime_env.h"
#include "bench/provenance.h"
#include "engine/autograd.h"
#include "engine/runtime.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/runtime.h"
#include "layers/inference.h"
#include "layers/model.h"
#include "layers/layers.h"

using namespace emotune;

int main(int argc, char** argv) {
  std::string model = "models/paper.safetensors", graph = "inference", conv = "auto", precision = "fp32",
              bf16_kernel;
  int batch = 1, threads = 1, iters = 30, warmup = 5;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_forward: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--model")) model = next("--model");
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(next("--batch"));
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next("--threads"));
    else if (!std::strcmp(argv[i], "--graph")) graph = next("--graph");
    else if (!std::strcmp(argv[i], "--conv")) conv = next("--conv");
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(next("--iters"));
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::atoi(next("--warmup"));
    else if (!std::strcmp(argv[i], "--precision")) precision = next("--precision");
    else if (!std::strcmp(argv[i], "--bf16-kernel")) bf16_kernel = next("--bf16-kernel");
    else {
      std::fprintf(stderr, "bench_forward: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (batch < 1 || threads < 1 || iters < 1 || (graph != "inference" && graph != "training")) {
    std::fprintf(stderr, "bench_forward: need --batch, --threads, --iters >= 1 and --graph inference|training\n");
    return 2;
  }
  emotune::runtime_start_from_env("bench_forward", argv);  // apps/runtime_env.h
  set_cpu_threads(threads);
  try {
    RuntimeSettings settings = runtime_settings();
    settings.graph = "training";  // load the modules; the graph is compiled below
    runtime_configure(settings);
    precision = runtime_set_precision(precision);
    if (!bf16_kernel.empty()) set_gemm_bf16_kernel(bf16_kernel_from_name(bf16_kernel));
    LoadedModel m = load_model(model);
    const int s = m.info.preprocess.size;
    std::shared_ptr<InferenceGraph> g;
    if (graph == "inference") {
      InferenceOptions o;
      o.conv_algo = conv;
      g = InferenceGraph::compile(*m.net, 1, s, s, o);
    }
    std::vector<float> x((size_t)batch * s * s);
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(0.0f, 1.0f);
    for (float& v : x) v = u(rng);
    NoGradGuard no_grad;
    auto run = [&] {
      if (g) return g->forward(x.data(), batch);
      return m.net->forward(Tensor::from_host({batch, 1, s, s}, x.data())).to_vector();
    };
    for (int i = 0; i < warmup; ++i) run();
    std::vector<double> ms;
    const double cpu0 = (double)std::clock();
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      auto y = run();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
      if (y.empty()) return 1;
    }
    // Process CPU time (all threads) per call: on a shared machine the wall time also counts the
    // time other processes held the cores.
    const double cpu_ms = ((double)std::clock() - cpu0) * 1000.0 / CLOCKS_PER_SEC / iters;
    std::sort(ms.begin(), ms.end());
    const CpuPath path = cpu_path_current();
    nlohmann::json out = {{"engine", "emotune"},
                          {"model", model},
                          {"arch", m.info.arch},
                          {"graph", graph},
                          {"conv", graph == "inference" ? conv : "-"},
                          {"batch", batch},
                          {"threads", threads},
                          {"precision", precision},
                          {"bf16_kernel", precision == "bf16" ? cpu_bf16_kernel() : std::string("-")},
                          {"iters", iters},
                          {"median_ms", ms[ms.size() / 2]},
                          {"min_ms", ms.front()},
                          {"cpu_ms", cpu_ms},
                          {"cpu_path", std::string(cpu_isa_name(path.cpu_isa)) + ", OpenBLAS " + path.blas_core},
                          {"commit", bench::commit()}};
    std::printf("%s\n", out.dump().c_str());
    if (g && std::getenv("BENCH_FORWARD_DESCRIBE")) {  // the steps and the ms of each (mean of --iters)
      std::vector<double> sum, one;
      for (int i = 0; i < iters; ++i) {
        g->forward(x.data(), batch, &one);
        sum.resize(one.size());
        for (size_t j = 0; j < one.size(); ++j) sum[j] += one[j] / iters;
      }
      std::fprintf(stderr, "%s", g->describe().c_str());
      for (double v : sum) std::fprintf(stderr, "%.3f ", v);
      std::fprintf(stderr, "ms per step\n");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_forward: %s\n", e.what());
    return 1;
  }
  return 0;
}
