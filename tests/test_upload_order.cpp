// Uploads from reused host buffers, checked without a GPU: a fake device (the CPU kernels, served
// as device "cuda" through override_kernel_table_for_testing) whose host-to-device copy is only
// recorded and happens at the next synchronisation, as a page-locked cudaMemcpyAsync may read its
// source long after it returned. On it:
// - Tensor::from_host / to / copy_from have finished reading the host memory when they return;
// - the trainer's batch upload (apps/train/batch_upload.h) trains on the batch the loader gave,
//   although the loader's threads refill the slot as soon as it is released.
// The trainer's old order (async copy, release, compute) fails the second case: the tensors then
// hold whatever batch the loader put into the slot last (issue 22). The same check on a real GPU,
// with a busy stream, is test_upload_order_cuda.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "apps/train/batch_upload.h"
#include "datasets/loader.h"
#include "engine/dispatch.h"
#include "engine/tensor.h"
#include "tests/train_testing.h"

using namespace emotune;

namespace {

// The fake device. Its memory is host memory and its kernels are the CPU's (so a test can read a
// device tensor directly); copy_from_host only queues the copy, and synchronize, copy_to_host and
// copy (which a real stream orders after it) carry the queued copies out first, reading the
// source at that moment.
struct DeferredCopies {
  struct Copy {
    void* dst;
    const void* src;
    size_t bytes;
  };
  static std::vector<Copy>& queue() {
    static std::vector<Copy> q;
    return q;
  }
  static void flush() {
    for (const Copy& c : queue()) std::memcpy(c.dst, c.src, c.bytes);
    queue().clear();
  }
  static void copy_from_host(void* dst, const void* src, size_t bytes) { queue().push_back({dst, src, bytes}); }
  static void copy_to_host(void* dst, const void* src, size_t bytes) {
    flush();
    std::memcpy(dst, src, bytes);
  }
  static void synchronize() { flush(); }
};

class FakeAsyncDevice {
 public:
  FakeAsyncDevice() : table_(kernel_table(Device::cpu)) {
    table_.copy_from_host = DeferredCopies::copy_from_host;
    table_.copy_to_host = DeferredCopies::copy_to_host;
    table_.copy = DeferredCopies::copy_to_host;  // device to device: ordered after the queued copies
    table_.synchronize = DeferredCopies::synchronize;
    override_kernel_table_for_testing(Device::cuda, &table_);
  }
  ~FakeAsyncDevice() {
    DeferredCopies::flush();
    override_kernel_table_for_testing(Device::cuda, nullptr);
  }
  FakeAsyncDevice(const FakeAsyncDevice&) = delete;
  FakeAsyncDevice& operator=(const FakeAsyncDevice&) = delete;

 private:
  KernelTable table_;
};

std::vector<float> values(size_t n, float base) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = base + (float)i;
  return v;
}

}  // namespace

TEST_CASE("the fake device defers copies: a caller that reuses its buffer early sees the later values") {
  // The premise of the tests below: with the copy of the kernel table itself (no engine upload),
  // overwriting the source before a synchronisation changes what arrives.
  FakeAsyncDevice fake;
  const KernelTable& k = kernel_table(Device::cuda);
  std::vector<float> host = values(64, 1), dev(64, 0);
  k.copy_from_host(dev.data(), host.data(), 64 * sizeof(float));
  std::fill(host.begin(), host.end(), -5.0f);
  k.synchronize();
  CHECK(dev == host);
}

TEST_CASE("Tensor::from_host, to and copy_from have read the host memory when they return") {
  FakeAsyncDevice fake;
  const std::vector<float> want = values(300, 10);
  std::vector<float> host = want;
  Tensor a = Tensor::from_host({300}, host.data(), Device::cuda);
  std::fill(host.begin(), host.end(), -1.0f);
  CHECK(a.to_vector() == want);

  Tensor cpu = Tensor::from_vector({300}, want);
  Tensor b = cpu.to(Device::cuda);
  cpu.fill_(-2.0f);
  CHECK(b.to_vector() == want);

  Tensor c = Tensor::zeros({300}, Device::cuda);
  Tensor src = Tensor::from_vector({300}, want);
  c.copy_from(src);
  src.fill_(-3.0f);
  CHECK(c.to_vector() == want);
}

TEST_CASE("every uploaded batch is the batch the loader gave, although its slot is refilled at once") {
  FakeAsyncDevice fake;
  const Dataset data = testing::distinct_faces(40 * 16, 7);
  LoaderOptions o;
  o.batch_size = 16;
  o.threads = 3;  // as a training run's loader: slots are refilled while the step runs
  o.seed = 5;
  o.augment = AugmentOptions::full();
  BatchLoader loader(data, o);
  loader.start_epoch(0);
  struct Seen {
    std::vector<float> images, targets;
    std::vector<int32_t> labels;
    DeviceBatch uploaded;
  };
  std::vector<Seen> seen;
  // No synchronisation until the epoch is over: by then every slot has been refilled several
  // times (40 batches through 8 slots), so a copy still pending would read another batch.
  while (const Batch* b = loader.next()) {
    Seen s;
    s.images.assign(b->images, b->images + (size_t)b->size * b->side * b->side);
    s.targets.assign(b->targets, b->targets + (size_t)b->size * b->num_classes);
    s.labels.assign(b->labels, b->labels + b->size);
    s.uploaded = upload_batch(loader, b, Device::cuda);
    seen.push_back(std::move(s));
  }
  REQUIRE(seen.size() == 40);
  kernel_table(Device::cuda).synchronize();
  int wrong = 0;
  for (const Seen& s : seen) {
    CHECK(s.uploaded.images.device() == Device::cuda);
    wrong += s.uploaded.images.to_vector() != s.images;
    wrong += s.uploaded.targets.to_vector() != s.targets;
    wrong += s.uploaded.labels != s.labels;
  }
  CHECK_MESSAGE(wrong == 0, wrong, " uploaded tensors differ from the batch the loader handed out");
}
