// Seeded random numbers for initialisation and shuffling: a Philox counter stream, so the state is
// two integers (seed, counter) that a checkpoint can store and a resumed run can restore, and the
// same seed gives bit-identical results on every machine (no std:: distributions, whose output is
// implementation-defined).
#pragma once
#include <cstddef>
#include <cstdint>
#include <utility>
#include <vector>

namespace emotune {

class Rng {
 public:
  explicit Rng(uint64_t seed = 0, uint64_t counter = 0) : seed_(seed), counter_(counter) {}

  uint32_t next_u32();
  float uniform();                         // [0, 1), 24 random bits
  float uniform(float lo, float hi);       // [lo, hi)
  float normal();                          // standard normal (Box-Muller)
  uint64_t below(uint64_t n);              // uniform integer in [0, n), unbiased
  template <typename T>
  void shuffle(std::vector<T>& v) {        // Fisher-Yates
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[below(i)]);
  }

  uint64_t seed() const { return seed_; }
  uint64_t counter() const { return counter_; }

 private:
  uint64_t seed_, counter_;
};

// A sub-stream seed for a named purpose ("init", "shuffle", "dropout", ...) of a run seed.
uint64_t derive_seed(uint64_t seed, uint64_t purpose);

}  // namespace emotune
