// One training step on the CPU (forward with dropout, loss + L2 penalty, backward, Adam update),
// timed the way bench/tf_train_step.py times TensorFlow/Keras in the same run of
// bench/vs_tensorflow_train.py: random inputs, warm-up steps, then the median wall time of --iters
// steps. One JSON line:
//   bench_train_cpu --arch paper --batch 16 --threads 1 [--iters 10] [--warmup 2] [--precision fp32|bf16]
//                   [--bf16-kernel amx|avx512-bf16]   (default: the best this CPU runs)
// Adam at 1e-4 as the seed's recipe (configs/paper-seed.json); the optimizer's cost is the same
// for any learning rate.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/runtime_env.h"
#include "bench/provenance.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/runtime.h"
#include "layers/nets/nets.h"

using namespace emotune;

int main(int argc, char** argv) {
  std::string arch = "paper";
  std::string precision = "fp32", bf16_kernel;
  int batch = 16, threads = 1, iters = 10, warmup = 2;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_train_cpu: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--arch")) arch = next("--arch");
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(next("--batch"));
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next("--threads"));
    else if (!std::strcmp(argv[i], "--iters")) iters = std::atoi(next("--iters"));
    else if (!std::strcmp(argv[i], "--warmup")) warmup = std::atoi(next("--warmup"));
    else if (!std::strcmp(argv[i], "--precision")) precision = next("--precision");
    else if (!std::strcmp(argv[i], "--bf16-kernel")) bf16_kernel = next("--bf16-kernel");
    else {
      std::fprintf(stderr, "bench_train_cpu: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (batch < 1 || threads < 1 || iters < 1) {
    std::fprintf(stderr, "bench_train_cpu: --batch, --threads and --iters must be >= 1\n");
    return 2;
  }
  emotune::runtime_start_from_env("bench_train_cpu", argv);  // apps/runtime_env.h
  set_cpu_threads(threads);
  try {
    if (precision != "fp32" && precision != "bf16") throw std::runtime_error("--precision: fp32 or bf16");
    set_cpu_precision(precision == "bf16" ? Precision::bf16 : Precision::fp32);
    if (!bf16_kernel.empty()) set_gemm_bf16_kernel(bf16_kernel_from_name(bf16_kernel));
    auto net = make_network(arch, 7, 1, "torch");
    net->set_training(true);
    AdamOptions ao;
    Adam opt(net->parameters(), ao);
    std::vector<float> x((size_t)batch * 48 * 48), t((size_t)batch * 7, 0.0f);
    for (size_t i = 0; i < x.size(); ++i) x[i] = (float)((i * 2654435761u) % 255) / 255.0f;
    for (int i = 0; i < batch; ++i) t[(size_t)i * 7 + i % 7] = 1.0f;
    Tensor xt = Tensor::from_vector({batch, 1, 48, 48}, x);
    Tensor tt = Tensor::from_vector({batch, 7}, t);
    uint64_t s = 0;
    auto step = [&] {
      net->set_step(s++);
      Tensor loss = ops::softmax_cross_entropy(net->forward(xt), tt, Tensor(), 0.0f);
      Tensor pen = net->penalty();
      if (pen.defined()) loss = ops::add(loss, pen);
      opt.zero_grad();
      loss.backward();
      opt.step(1e-4f);
    };
    for (int i = 0; i < warmup; ++i) step();
    std::vector<double> ms;
    for (int i = 0; i < iters; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      step();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    const double median = ms[ms.size() / 2];
    const CpuPath path = cpu_path_current();
    nlohmann::json out = {{"engine", "emotune"},
                          {"arch", arch},
                          {"batch", batch},
                          {"threads", threads},
                          {"precision", precision},
                          {"bf16_kernel", precision == "bf16" ? cpu_bf16_kernel() : std::string("-")},
                          {"iters", iters},
                          {"median_ms", median},
                          {"img_per_s", batch * 1000.0 / median},
                          {"cpu_path", std::string(cpu_isa_name(path.cpu_isa)) + ", OpenBLAS " + path.blas_core},
                          {"commit", bench::commit()}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_train_cpu: %s\n", e.what());
    return 1;
  }
  return 0;
}
