#include "apps/train/holdout.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "datasets/sampler.h"

namespace emotune {

namespace {
constexpr uint64_t kHoldoutKey = 0x401d0000ull;  // the shuffles' stream, apart from the loader's and calibration's
}

Holdout stratified_holdout(const std::vector<uint8_t>& labels, double fraction, uint64_t seed) {
  if (!(fraction >= 0 && fraction < 1)) throw Error("val_fraction must be in [0, 1)");
  std::vector<std::vector<size_t>> members;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= members.size()) members.resize(labels[i] + 1);
    members[labels[i]].push_back(i);
  }
  Holdout h;
  for (size_t c = 0; c < members.size(); ++c) {
    const std::vector<size_t>& m = members[c];
    size_t take = (size_t)std::llround(fraction * (double)m.size());
    if (fraction > 0 && take == 0 && m.size() >= 2) take = 1;
    const std::vector<uint32_t> order = epoch_order(m.size(), true, seed, kHoldoutKey + c);
    for (size_t k = 0; k < m.size(); ++k) (k < take ? h.held_out : h.train).push_back(m[order[k]]);
  }
  std::sort(h.train.begin(), h.train.end());
  std::sort(h.held_out.begin(), h.held_out.end());
  return h;
}

}  // namespace emotune
