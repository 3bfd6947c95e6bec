// Class balancing, two independent choices (FER-2013 has 16x more happy than disgust faces):
//  - a weighted sampler (oversampling): each epoch draws its indices with replacement, sample i
//    with probability proportional to 1 / count[label_i]. Implemented exactly as "pick a
//    non-empty class uniformly, then a member of it uniformly", so every class is expected to
//    fill 1/C of the epoch. Seeded: draw k of epoch e depends only on (seed, e, k).
//  - class weights for the loss: w_c = n / (C * count_c), C the number of non-empty classes,
//    0 for an empty class. The sample-weighted mean of w over the data is exactly 1, so the loss
//    keeps its scale and the learning rate need not change (sklearn's "balanced" weights).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace emotune {

enum class Balance { none, sampler, loss_weights };
// "none", "sampler" or "loss-weights"; throws emotune::Error listing them.
Balance balance_from_name(const std::string& name);
const char* balance_name(Balance b);

std::vector<float> class_weights(const std::vector<int64_t>& counts);

// The epoch's visiting order without a sampler: 0..n-1, or a Fisher-Yates shuffle of it keyed by
// (seed, epoch) when shuffle is on.
std::vector<uint32_t> epoch_order(size_t n, bool shuffle, uint64_t seed, uint64_t epoch);

class WeightedSampler {
 public:
  // Throws emotune::Error when there are no samples.
  WeightedSampler(const std::vector<uint8_t>& labels, int num_classes);
  // `count` indices for epoch `epoch` (count = labels.size() gives an epoch as long as the data).
  std::vector<uint32_t> draw(size_t count, uint64_t seed, uint64_t epoch) const;
  // The probability that one draw picks sample i.
  double probability(size_t i) const;

 private:
  std::vector<uint8_t> labels_;
  std::vector<std::vector<uint32_t>> members_;  // non-empty classes only
  std::vector<int> slot_of_class_;              // class -> index in members_, -1 when empty
};

}  // namespace emotune
