// Honest selection: a validation slice carved out of the training split. With `val_fraction` > 0
// (apps/train/config.h) the run validates on this slice (best epoch, the plateau schedule, the
// exported model's temperature) and the split it reports (`val_split`, PublicTest) is evaluated
// once, at the end, on the exported model: nothing is chosen on the faces that are reported.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace emotune {

// Indices 0..n-1 of `labels` split into a held-out slice and the rest, stratified: each class's
// indices are shuffled (datasets/sampler.h epoch_order, keyed by seed and class: the same on every
// machine) and round(fraction * count) of them held out, at least one when the class has two or
// more faces and the fraction is > 0. Both lists sorted (file order). fraction in [0, 1).
struct Holdout {
  std::vector<size_t> train, held_out;
};
Holdout stratified_holdout(const std::vector<uint8_t>& labels, double fraction, uint64_t seed);

}  // namespace emotune
