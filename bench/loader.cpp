// Batch loader throughput: 48x48 images per second assembled into batches (Preprocess::apply,
// augmentation, targets) by BatchLoader, the consumer doing nothing but take and release them.
// One iteration = one epoch over the data. Target (issue 3): >= 20,000 images/s with full
// augmentation on this 2-core machine, enough to feed a GPU training step.
//   loader/<augment>/threads:<t>/batch:128   augment = none | full (crop 4, flip, rotate 10,
//                                            translate 0.05, brightness 0.2, contrast 0.2,
//                                            erase 0.25)
//   augment_one/<augment>                    augment_image on one image, one thread (cost per image)
// Data: 16,384 synthetic random faces by default; --real uses the Training split of
// ../shared/data/fer2013/fer2013-trainval.u8.xz (28,709 faces; loading is not timed).
// images/s is wall clock (what the trainer gets on this machine now, other jobs included);
// images/cpu_s divides by the process CPU time (workers included): the cost, independent of load.
// Before timing, the first epoch's batches from 1 and 2 threads are checked to be identical.
//
//   build-data/bin/bench_loader [--real] --benchmark_format=json --benchmark_out=/tmp/loader.json
#include <benchmark/benchmark.h>

#include <cstdio>
#include <cstring>
#include <ctime>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "bench/provenance.h"
#include "datasets/augment.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "datasets/random.h"
#include "kernels/philox.h"

using namespace emotune;

namespace {

Dataset g_data;
constexpr int kBatch = 128;

Dataset synthetic(size_t n) {
  Dataset d;
  d.source = "synthetic";
  d.reserve(n);
  std::vector<uint8_t> px(kFacePixels);
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < kFacePixels; ++k) px[k] = (uint8_t)(philox_uniform(7, i * kFacePixels + k) * 256);
    d.push(px.data(), (int)(i % 7), Split::training, (int32_t)i, (int32_t)i);
  }
  return d;
}

LoaderOptions options(bool full, int threads) {
  LoaderOptions o;
  o.batch_size = kBatch;
  o.threads = threads;
  o.seed = 1;
  if (full) o.augment = AugmentOptions::full();
  return o;
}

double process_cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

void bench_loader(benchmark::State& state, bool full, int threads) {
  BatchLoader loader(g_data, options(full, threads));
  int64_t epoch = 0;
  int64_t images = 0;
  const double cpu0 = process_cpu_seconds();
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    while (const Batch* b = loader.next()) {
      images += b->size;
      benchmark::DoNotOptimize(b->images[0]);
      loader.release(b);
    }
  }
  const double cpu = process_cpu_seconds() - cpu0;
  state.SetItemsProcessed(images);
  state.counters["images/s"] = benchmark::Counter((double)images, benchmark::Counter::kIsRate);
  // Images per CPU-second of the whole process (workers included): what one free core delivers,
  // a figure that other jobs on a shared machine do not change much.
  state.counters["images/cpu_s"] = (double)images / cpu;
}

void bench_augment_one(benchmark::State& state, bool full) {
  AugmentOptions o = full ? AugmentOptions::full() : AugmentOptions{};
  std::vector<float> img(kFacePixels), scratch(kFacePixels);
  uint64_t key = data_rng_key(1, RngStream::augment, 0), index = 0;
  for (auto _ : state) {
    Preprocess{}.apply(g_data.image(index % g_data.size()), img.data());
    augment_image(img.data(), kFaceSide, o, 0.0f, 1.0f, key, index++, scratch.data());
    benchmark::DoNotOptimize(img[0]);
  }
  state.SetItemsProcessed(state.iterations());
}

bool validate() {
  BatchLoader a(g_data, options(true, 1)), b(g_data, options(true, 2));
  a.start_epoch(0);
  b.start_epoch(0);
  for (;;) {
    const Batch* x = a.next();
    const Batch* y = b.next();
    if (!x || !y) return !x && !y;
    size_t n = (size_t)x->size * kFacePixels;
    bool same = x->size == y->size && std::memcmp(x->images, y->images, n * sizeof(float)) == 0 &&
                std::memcmp(x->samples, y->samples, x->size * sizeof(int32_t)) == 0;
    a.release(x);
    b.release(y);
    if (!same) return false;
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_loader", argv, /*select_cpu_path=*/false);
  bool real = false;
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--real") == 0) real = true;
    else rest.push_back(argv[i]);
  }
  int rest_argc = (int)rest.size();

  std::string source = "synthetic, 16384 random faces";
  if (real) {
    LoadOptions lo;
    lo.splits = {Split::training};
    std::string path = std::string(EMOTUNE_SHARED_DIR) + "/data/fer2013/fer2013-trainval.u8.xz";
    g_data = load_dataset(path, lo);
    source = path + " Training (" + std::to_string(g_data.size()) + " faces)";
  } else {
    g_data = synthetic(16384);
  }
  if (!validate()) {
    std::fprintf(stderr, "bench_loader: 1 and 2 threads gave different batches\n");
    return 1;
  }

  bench::add_provenance();
  benchmark::AddCustomContext("emotune_data", source);
  benchmark::AddCustomContext("emotune_full_augment", AugmentOptions::full().to_json());

  for (bool full : {false, true})
    for (int threads : {1, 2})
      benchmark::RegisterBenchmark(("loader/" + std::string(full ? "full" : "none") + "/threads:" +
                                    std::to_string(threads) + "/batch:" + std::to_string(kBatch))
                                       .c_str(),
                                   bench_loader, full, threads)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime()
          ->MinTime(2.0);
  for (bool full : {false, true})
    benchmark::RegisterBenchmark(("augment_one/" + std::string(full ? "full" : "none")).c_str(),
                                 bench_augment_one, full);

  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
