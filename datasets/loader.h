// The batch loader: background threads turn samples into ready-to-copy batches while the caller
// trains on the previous ones.
//
//   BatchLoader loader(data, {.batch_size = 128, .seed = 1, .threads = 2,
//                             .augment = AugmentOptions::full()});
//   for (int epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (const Batch* b = loader.next()) { train(b->images, b->targets, b->size); loader.release(b); }
//   }
//
// A batch holds images [size][side*side] float (Preprocess::apply, then augmentation), targets
// [size][num_classes] float (one-hot, or the sample's soft distribution when the data set has
// soft targets and use_soft is on), labels [size] int32 and the dataset index of every sample.
// Buffers live in a ring of `prefetch` slots: batch b is assembled into slot b % prefetch once
// batch b - prefetch has been released. With a page-locked `memory` allocator (batches bound for a
// GPU) host-to-device copies can be asynchronous; without one, plain aligned memory, and a CUDA
// build's loader never loads the CUDA backend.
//
// Determinism: the epoch order is computed from (seed, epoch) (shuffle or weighted sampler) and
// sample k of the epoch is augmented from (seed, epoch, k); batches come out in order. So for a
// seed the batches are bit-identical whatever the number of threads (0 = assemble in next()).
// Threads sleep on condition variables (no busy waits). An exception thrown while assembling
// batch b is rethrown by the next() that would have returned b. start_epoch() abandons the rest
// of an unfinished epoch; the destructor stops and joins the workers.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "base/preprocess.h"
#include "datasets/augment.h"
#include "datasets/dataset.h"

namespace emotune {

enum class SamplerKind { none, weighted };

struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;  // batch number within the epoch
  int size = 0;       // samples in this batch (the last one may be smaller)
  int side = 48;
  int num_classes = 7;
  float* images = nullptr;     // [size][side*side]
  float* targets = nullptr;    // [size][num_classes]
  int32_t* labels = nullptr;   // [size]
  int32_t* samples = nullptr;  // [size] dataset indices
};

struct LoaderOptions {
  int batch_size = 64;
  bool shuffle = true;
  uint64_t seed = 0;
  int threads = 2;           // 0: assemble on the caller's thread inside next()
  bool drop_last = false;    // drop the last, smaller batch
  AugmentOptions augment;    // default: none
  SamplerKind sampler = SamplerKind::none;  // weighted: oversample rare classes (datasets/sampler.h)
  int64_t epoch_samples = 0;  // weighted sampler only: draws per epoch (0: the data set size)
  int num_classes = 0;        // target width; 0: the data set's num_classes
  bool use_soft = true;       // use soft targets when the data set has them
  Preprocess preprocess;      // default: scale 1/255, mean 0, std 1
  int prefetch = 0;           // ring slots; 0: 2 * threads + 2
  // Where the batch buffers come from: 64-byte-aligned host memory by default; a caller whose
  // batches go to a GPU passes a page-locked allocator (the trainer: the engine's
  // alloc_host_pinned), so that host-to-device copies can be asynchronous. The data sets know
  // nothing of devices.
  struct HostAllocator {
    void* (*allocate)(size_t bytes) = nullptr;  // null: aligned host memory
    void (*release)(void* p) = nullptr;
  } memory;
  // Optional: runs on the assembling thread after each batch is filled (e.g. mixup, or a test
  // that injects a failure). It must be deterministic for the batch to stay deterministic; an
  // exception it throws reaches the caller of next() for that batch.
  std::function<void(Batch& batch, int64_t epoch)> batch_hook;
};


class BatchLoader {
 public:
  // Keeps a reference to `data`: it must outlive the loader. Throws emotune::Error on bad
  // options (batch size < 1, labels >= num_classes, size mismatch with the preprocessing, ...).
  BatchLoader(const Dataset& data, const LoaderOptions& options);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;

  // Starts (or restarts) epoch `epoch`: computes its order and lets the workers run. Batches of
  // an unfinished previous epoch that were not released become invalid.
  void start_epoch(int64_t epoch);
  // The next batch in order, or nullptr at the end of the epoch (or before any start_epoch).
  // Rethrows a worker's exception. Throws if the caller already holds every ring slot.
  const Batch* next();
  // Gives the slot of `batch` back to the workers.
  void release(const Batch* batch);

  int64_t batches_per_epoch() const { return num_batches_; }
  int64_t samples_per_epoch() const { return (int64_t)order_size_; }
  const LoaderOptions& options() const { return opt_; }

 private:
  enum class SlotState { free, filling, ready, failed, held };
  struct Slot {
    Batch batch;
    void* memory = nullptr;
    SlotState state = SlotState::free;
    std::exception_ptr error;
  };

  void worker_loop();
  void shutdown();  // stops and joins the workers, frees the buffers; safe to call twice
  void fill(Slot& slot, int64_t b, uint64_t generation);
  int64_t batch_size_of(int64_t b) const;
  int64_t order_size_for_epoch() const;

  const Dataset& data_;
  LoaderOptions opt_;
  int side_ = 48;
  int num_classes_ = 7;
  float value_lo_ = 0, value_hi_ = 1;
  std::vector<Slot> slots_;
  std::vector<std::thread> workers_;

  std::mutex mu_;
  std::condition_variable work_cv_;  // workers wait for a claimable batch
  std::condition_variable done_cv_;  // next() and start_epoch() wait for workers
  bool stop_ = false;
  bool epoch_active_ = false;
  uint64_t generation_ = 0;  // bumped by start_epoch; stale work is discarded
  int64_t epoch_ = 0;
  std::vector<uint32_t> order_;
  size_t order_size_ = 0;
  int64_t num_batches_ = 0;
  int64_t next_claim_ = 0;    // next batch a worker may assemble
  int64_t next_consume_ = 0;  // next batch next() returns
  int busy_ = 0;              // workers currently filling
  int held_ = 0;              // batches handed out and not released
  uint64_t augment_key_ = 0;
};

}  // namespace emotune
