// The trainer's batch upload on a real GPU (issue 22): batch 16, three loader threads filling
// page-locked slots, the stream kept busy with matrix products queued before every upload, and
// every uploaded batch compared with a snapshot of the loader's buffer taken when the batch was
// handed out. test_upload_order checks the same without a GPU on a fake device.
// For the record, the old order (an asynchronous copy, then the release) runs on the same
// loader and prints how many of its batches arrived changed; it is a measurement, not a check,
// since a race need not lose on a given day.
#include <doctest/doctest.h>

#include <vector>

#include "apps/train/batch_upload.h"
#include "datasets/loader.h"
#include "engine/dispatch.h"
#include "kernels/linear.h"
#include "kernels/runtime.h"
#include "tests/cuda_testing.h"
#include "tests/testing.h"
#include "tests/train_testing.h"

using namespace emotune;

namespace {

// A few milliseconds of work queued on the stream, not waited for: the next copy queues behind it.
struct BusyStream {
  LinearShape p{1024, 1024, 1024};
  emotune::testing::DeviceBuffer x{(size_t)p.n * p.in}, w{(size_t)p.out * p.in}, b{(size_t)p.out},
      y{(size_t)p.n * p.out};
  void queue(int products) {
    for (int i = 0; i < products; ++i) linear_forward_cuda(p, x.ptr, w.ptr, b.ptr, y.ptr);
  }
};

LoaderOptions loader_options() {
  LoaderOptions o;
  o.batch_size = 16;
  o.threads = 3;
  o.seed = 21;
  o.augment = AugmentOptions::full();
  o.memory = {alloc_host_pinned, free_host_pinned};  // page-locked, as a CUDA training run's loader
  return o;
}

struct Snapshot {
  std::vector<float> images, targets;
  explicit Snapshot(const Batch* b)
      : images(b->images, b->images + (size_t)b->size * b->side * b->side),
        targets(b->targets, b->targets + (size_t)b->size * b->num_classes) {}
};

}  // namespace

TEST_CASE("cuda: every uploaded batch is the loader's batch, with a busy stream and three loader threads") {
  if (!emotune::testing::cuda_or_skip("cuda batch upload order")) return;
  const Dataset data = testing::distinct_faces(60 * 16, 3);
  BatchLoader loader(data, loader_options());
  BusyStream busy;
  for (int epoch = 0; epoch < 2; ++epoch) {
    loader.start_epoch(epoch);
    std::vector<Snapshot> want;
    std::vector<DeviceBatch> got;
    while (const Batch* b = loader.next()) {
      busy.queue(4);
      want.emplace_back(b);
      got.push_back(upload_batch(loader, b, Device::cuda));
    }
    REQUIRE(got.size() == 60);
    int wrong = 0;
    for (size_t i = 0; i < got.size(); ++i)
      wrong += got[i].images.to_vector() != want[i].images || got[i].targets.to_vector() != want[i].targets;
    CHECK_MESSAGE(wrong == 0, "epoch ", epoch, ": ", wrong, " of 60 uploaded batches differ from the loader's");
  }

  // The old order, measured: the kernel table's asynchronous copy, then the release at once.
  loader.start_epoch(2);
  const KernelTable& k = kernel_table(Device::cuda);
  std::vector<Snapshot> want;
  std::vector<Tensor> got;
  while (const Batch* b = loader.next()) {
    busy.queue(4);
    want.emplace_back(b);
    Tensor t = Tensor::empty({b->size, 1, b->side, b->side}, Device::cuda);
    k.copy_from_host(t.data(), b->images, sizeof(float) * t.numel());
    loader.release(b);
    got.push_back(t);
  }
  int changed = 0;
  for (size_t i = 0; i < got.size(); ++i) changed += got[i].to_vector() != want[i].images;
  MESSAGE("old order (async copy, then release): ", changed, " of ", got.size(),
          " batches arrived changed (a measurement of the race, not a check)");
}
