#include "datasets/sampler.h"

#include <numeric>
#include <utility>

#include "base/error.h"
#include "datasets/random.h"

namespace emotune {

Balance balance_from_name(const std::string& name) {
  if (name == "none") return Balance::none;
  if (name == "sampler") return Balance::sampler;
  if (name == "loss-weights" || name == "loss_weights") return Balance::loss_weights;
  throw Error("unknown balancing '" + name + "' (expected none, sampler or loss-weights)");
}

const char* balance_name(Balance b) {
  switch (b) {
    case Balance::sampler: return "sampler";
    case Balance::loss_weights: return "loss-weights";
    default: return "none";
  }
}

std::vector<float> class_weights(const std::vector<int64_t>& counts) {
  int64_t n = 0;
  int present = 0;
  for (int64_t c : counts) {
    n += c;
    present += c > 0;
  }
  std::vector<float> w(counts.size(), 0.0f);
  for (size_t c = 0; c < counts.size(); ++c)
    if (counts[c] > 0) w[c] = (float)((double)n / ((double)present * (double)counts[c]));
  return w;
}

std::vector<uint32_t> epoch_order(size_t n, bool shuffle, uint64_t seed, uint64_t epoch) {
  std::vector<uint32_t> order(n);
  std::iota(order.begin(), order.end(), 0u);
  if (!shuffle) return order;
  uint64_t key = data_rng_key(seed, RngStream::shuffle, epoch);
  for (size_t i = n; i > 1; --i) {
    uint32_t j = bits_below(data_rng_bits(key, i, 0).v[0], (uint32_t)i);
    std::swap(order[i - 1], order[j]);
  }
  return order;
}

WeightedSampler::WeightedSampler(const std::vector<uint8_t>& labels, int num_classes)
    : labels_(labels), slot_of_class_(num_classes, -1) {
  if (labels.empty()) throw Error("weighted sampler: the data set is empty");
  std::vector<std::vector<uint32_t>> by_class(num_classes);
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= num_classes)
      throw Error("weighted sampler: label " + std::to_string(labels[i]) + " of sample " +
                  std::to_string(i) + " is not below " + std::to_string(num_classes));
    by_class[labels[i]].push_back((uint32_t)i);
  }
  for (int c = 0; c < num_classes; ++c)
    if (!by_class[c].empty()) {
      slot_of_class_[c] = (int)members_.size();
      members_.push_back(std::move(by_class[c]));
    }
}

std::vector<uint32_t> WeightedSampler::draw(size_t count, uint64_t seed, uint64_t epoch) const {
  uint64_t key = data_rng_key(seed, RngStream::sampler, epoch);
  std::vector<uint32_t> out(count);
  uint32_t classes = (uint32_t)members_.size();
  for (size_t k = 0; k < count; ++k) {
    Philox4 r = data_rng_bits(key, k, 0);
    const std::vector<uint32_t>& m = members_[bits_below(r.v[0], classes)];
    out[k] = m[bits_below(r.v[1], (uint32_t)m.size())];
  }
  return out;
}

double WeightedSampler::probability(size_t i) const {
  const std::vector<uint32_t>& m = members_[slot_of_class_[labels_[i]]];
  return 1.0 / ((double)members_.size() * (double)m.size());
}

}  // namespace emotune
