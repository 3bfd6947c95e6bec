// One training step of a whole network (forward, loss, backward, optimizer update) through the
// engine, on the CPU or the GPU: the figure users feel. Compared in docs/benchmarks.md with
// bench/pytorch_train_step.py (PyTorch + cuDNN, the same network and batch) run in the same
// session on the same machine.
//   bench_train_step [--benchmark_filter=cuda]      (GPU cases skip when there is no GPU)
#include <benchmark/benchmark.h>

#include <chrono>

#include "apps/runtime_env.h"
#include "bench/provenance.h"
#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "layers/nets/nets.h"

using namespace emotune;

namespace {

void train_step(benchmark::State& state, const char* arch, Device dev) {
  if (dev == Device::cuda && !cuda_available()) {
    state.SkipWithError("no GPU: skipped");
    return;
  }
  const int batch = (int)state.range(0);
  auto net = make_network(arch, 7, 1);
  net->to(dev);
  const float lr = 0.01f;
  SgdOptions sp;
  sp.momentum = 0.9f;
  sp.nesterov = true;
  Sgd opt(net->parameters(), sp);
  std::vector<float> x(batch * 48 * 48), t(batch * 7, 0.0f);
  for (size_t i = 0; i < x.size(); ++i) x[i] = (float)((i * 2654435761u) % 255) / 255.0f;
  for (int i = 0; i < batch; ++i) t[i * 7 + i % 7] = 1.0f;
  Tensor xt = Tensor::from_vector({batch, 1, 48, 48}, x, dev);
  Tensor tt = Tensor::from_vector({batch, 7}, t, dev);
  auto step = [&](uint64_t s) {
    net->set_step(s);
    Tensor loss = ops::softmax_cross_entropy(net->forward(xt), tt, Tensor(), 0.0f);
    Tensor pen = net->penalty();
    if (pen.defined()) loss = ops::add(loss, pen);
    opt.zero_grad();
    loss.backward();
    opt.step(lr);
    kernel_table(dev).synchronize();
  };
  for (int i = 0; i < 3; ++i) step(i);  // warm-up: allocator caches, cuBLAS handles
  uint64_t s = 3;
  for (auto _ : state) {
    auto t0 = std::chrono::steady_clock::now();
    step(s++);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["img/s"] = benchmark::Counter((double)batch, benchmark::Counter::kIsIterationInvariantRate);
}

void register_all() {
  for (const char* arch : {"paper", "vgg"}) {
    for (Device dev : {Device::cpu, Device::cuda}) {
      std::string name = std::string("train_step/") + arch + "/" + device_name(dev);
      auto* b = benchmark::RegisterBenchmark(name.c_str(), [arch, dev](benchmark::State& st) { train_step(st, arch, dev); });
      b->UseManualTime()->Unit(benchmark::kMillisecond);
      if (dev == Device::cpu) b->Arg(16)->Iterations(3);
      else b->Arg(16)->Arg(64)->Arg(128)->MinTime(1.0);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_train_step", argv, /*select_cpu_path=*/false);
  register_all();
  bench::add_provenance();
  benchmark::AddCustomContext("cuda", cuda_available() ? "available" : "not available");
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
