#include "datasets/loader.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>

#include "base/error.h"
#include "datasets/random.h"
#include "datasets/sampler.h"

namespace emotune {

namespace {

size_t align64(size_t n) { return (n + 63) / 64 * 64; }

}  // namespace

BatchLoader::BatchLoader(const Dataset& data, const LoaderOptions& options)
    : data_(data), opt_(options) {
  if (opt_.batch_size < 1) throw Error("loader: batch size must be at least 1");
  if (opt_.threads < 0 || opt_.threads > 64) throw Error("loader: threads must be 0..64");
  if (data_.size() == 0) throw Error("loader: the data set " + data_.source + " is empty");
  if (opt_.preprocess.size != kFaceSide)
    throw Error("loader: preprocessing size " + std::to_string(opt_.preprocess.size) +
                " differs from the data set's " + std::to_string(kFaceSide) + "x" +
                std::to_string(kFaceSide) + " images");
  opt_.augment.validate();
  side_ = kFaceSide;
  num_classes_ = opt_.num_classes > 0 ? opt_.num_classes : data_.num_classes;
  for (size_t i = 0; i < data_.size(); ++i)
    if (data_.labels[i] >= num_classes_)
      throw Error("loader: " + data_.where(i) + ": label " + std::to_string(data_.labels[i]) +
                  " does not fit " + std::to_string(num_classes_) + " classes");
  if (opt_.use_soft && data_.has_soft() && data_.num_classes != num_classes_)
    throw Error("loader: soft targets have " + std::to_string(data_.num_classes) +
                " classes, the loader was asked for " + std::to_string(num_classes_));
  if (opt_.sampler == SamplerKind::weighted && opt_.epoch_samples < 0)
    throw Error("loader: epoch_samples must be >= 0");

  // The value range of preprocessed pixels, for brightness, clamping and erase noise.
  uint8_t px[2] = {0, 255};
  Preprocess range = opt_.preprocess;
  range.size = 1;
  range.apply(px, &value_lo_);
  range.apply(px + 1, &value_hi_);

  order_size_ = (size_t)order_size_for_epoch();
  num_batches_ = opt_.drop_last ? (int64_t)(order_size_ / opt_.batch_size)
                                : (int64_t)((order_size_ + opt_.batch_size - 1) / opt_.batch_size);

  int prefetch = opt_.prefetch > 0 ? opt_.prefetch : 2 * opt_.threads + 2;
  slots_.resize(std::max(prefetch, 2));
  const size_t bs = (size_t)opt_.batch_size;
  const size_t img_bytes = align64(bs * side_ * side_ * sizeof(float));
  const size_t tgt_bytes = align64(bs * num_classes_ * sizeof(float));
  const size_t idx_bytes = align64(bs * sizeof(int32_t));
  try {
    for (Slot& s : slots_) {
      const size_t bytes = img_bytes + tgt_bytes + 2 * idx_bytes;
      s.memory = opt_.memory.allocate ? opt_.memory.allocate(bytes) : std::aligned_alloc(64, align64(bytes));
      if (!s.memory) throw Error("loader: out of host memory for batch buffers");
      char* p = (char*)s.memory;
      s.batch.images = (float*)p;
      s.batch.targets = (float*)(p + img_bytes);
      s.batch.labels = (int32_t*)(p + img_bytes + tgt_bytes);
      s.batch.samples = (int32_t*)(p + img_bytes + tgt_bytes + idx_bytes);
      s.batch.side = side_;
      s.batch.num_classes = num_classes_;
    }
    for (int t = 0; t < opt_.threads; ++t) workers_.emplace_back(&BatchLoader::worker_loop, this);
  } catch (...) {
    shutdown();  // a destructor does not run when a constructor throws
    throw;
  }
}

BatchLoader::~BatchLoader() { shutdown(); }

void BatchLoader::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stop_ = true;
    ++generation_;
  }
  work_cv_.notify_all();
  for (std::thread& t : workers_)
    if (t.joinable()) t.join();
  workers_.clear();
  for (Slot& s : slots_) {
    if (!s.memory) continue;
    if (opt_.memory.allocate) opt_.memory.release(s.memory);
    else std::free(s.memory);
    s.memory = nullptr;
  }
}

int64_t BatchLoader::order_size_for_epoch() const {
  if (opt_.sampler == SamplerKind::weighted && opt_.epoch_samples > 0) return opt_.epoch_samples;
  return (int64_t)data_.size();
}

int64_t BatchLoader::batch_size_of(int64_t b) const {
  int64_t start = b * opt_.batch_size;
  return std::min<int64_t>(opt_.batch_size, (int64_t)order_size_ - start);
}

void BatchLoader::start_epoch(int64_t epoch) {
  std::unique_lock<std::mutex> lk(mu_);
  ++generation_;
  epoch_active_ = false;
  // Workers still filling slots for the old epoch finish (their results are discarded) before
  // the slots and the order are reused.
  done_cv_.wait(lk, [&] { return busy_ == 0; });
  for (Slot& s : slots_) {
    s.state = SlotState::free;
    s.error = nullptr;
  }
  held_ = 0;
  lk.unlock();

  std::vector<uint32_t> order;
  if (opt_.sampler == SamplerKind::weighted)
    order = WeightedSampler(data_.labels, num_classes_).draw(order_size_, opt_.seed, epoch);
  else
    order = epoch_order(data_.size(), opt_.shuffle, opt_.seed, epoch);

  lk.lock();
  order_ = std::move(order);
  epoch_ = epoch;
  augment_key_ = data_rng_key(opt_.seed, RngStream::augment, (uint64_t)epoch);
  next_claim_ = 0;
  next_consume_ = 0;
  epoch_active_ = true;
  lk.unlock();
  work_cv_.notify_all();
}

void BatchLoader::fill(Slot& slot, int64_t b, uint64_t generation) {
  (void)generation;
  Batch& batch = slot.batch;
  batch.epoch = epoch_;
  batch.index = b;
  batch.size = (int)batch_size_of(b);
  const size_t P = (size_t)side_ * side_;
  const int C = num_classes_;
  const bool soft = opt_.use_soft && data_.has_soft();
  const bool augment = opt_.augment.any();
  thread_local std::vector<float> scratch;
  scratch.resize(P);
  const int64_t start = b * opt_.batch_size;
  for (int i = 0; i < batch.size; ++i) {
    const uint64_t k = (uint64_t)(start + i);  // position in the epoch: the augmentation counter
    const uint32_t idx = order_[k];
    float* img = batch.images + i * P;
    opt_.preprocess.apply(data_.image(idx), img);
    if (augment)
      augment_image(img, side_, opt_.augment, value_lo_, value_hi_, augment_key_, k, scratch.data());
    float* t = batch.targets + (size_t)i * C;
    if (soft) {
      std::memcpy(t, data_.soft.data() + (size_t)idx * C, C * sizeof(float));
    } else {
      std::fill(t, t + C, 0.0f);
      t[data_.labels[idx]] = 1.0f;
    }
    batch.labels[i] = data_.labels[idx];
    batch.samples[i] = (int32_t)idx;
  }
  if (opt_.batch_hook) opt_.batch_hook(batch, epoch_);
}

void BatchLoader::worker_loop() {
  std::unique_lock<std::mutex> lk(mu_);
  const int64_t ring = (int64_t)slots_.size();
  for (;;) {
    work_cv_.wait(lk, [&] {
      return stop_ || (epoch_active_ && next_claim_ < num_batches_ &&
                       slots_[next_claim_ % ring].state == SlotState::free);
    });
    if (stop_) return;
    const int64_t b = next_claim_++;
    Slot& slot = slots_[b % ring];
    slot.state = SlotState::filling;
    const uint64_t generation = generation_;
    ++busy_;
    lk.unlock();
    std::exception_ptr error;
    try {
      fill(slot, b, generation);
    } catch (...) {
      error = std::current_exception();
    }
    lk.lock();
    --busy_;
    if (generation == generation_) {
      slot.state = error ? SlotState::failed : SlotState::ready;
      slot.error = error;
    }
    done_cv_.notify_all();
  }
}

const Batch* BatchLoader::next() {
  std::unique_lock<std::mutex> lk(mu_);
  if (!epoch_active_ || next_consume_ >= num_batches_) return nullptr;
  const int64_t ring = (int64_t)slots_.size();
  Slot& slot = slots_[next_consume_ % ring];
  if (slot.state == SlotState::held)
    throw Error("loader: all " + std::to_string(ring) +
                " batch buffers are held; release batches before asking for more");
  if (workers_.empty()) {
    // Synchronous mode: assemble here (exceptions reach the caller directly).
    slot.state = SlotState::filling;
    fill(slot, next_consume_, generation_);
  } else {
    done_cv_.wait(lk, [&] {
      return slot.state == SlotState::ready || slot.state == SlotState::failed;
    });
    if (slot.state == SlotState::failed) std::rethrow_exception(slot.error);
  }
  slot.state = SlotState::held;
  ++held_;
  ++next_consume_;
  return &slot.batch;
}

void BatchLoader::release(const Batch* batch) {
  if (!batch) return;
  std::unique_lock<std::mutex> lk(mu_);
  for (Slot& s : slots_) {
    if (&s.batch != batch) continue;
    // (The batch's fields are not read here: a worker may already be refilling this slot.)
    if (s.state != SlotState::held)
      throw Error("loader: release of a batch that is not held (released twice, or from an "
                  "abandoned epoch?)");
    s.state = SlotState::free;
    --held_;
    lk.unlock();
    work_cv_.notify_all();
    return;
  }
  throw Error("loader: release of a batch that this loader did not hand out");
}

}  // namespace emotune
