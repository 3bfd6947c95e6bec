#include "datasets/mixup.h"

#include <cmath>
#include <vector>

#include "base/error.h"
#include "datasets/random.h"

namespace emotune {

namespace {

// A stream of uniforms in (0, 1) for one batch and one purpose (`what`): draw k of it.
struct Draws {
  uint64_t key;
  uint64_t index;
  uint64_t next = 0;
  double uniform() {  // (0, 1): never 0, so logs stay finite
    const Philox4 r = data_rng_bits(key, index, next++);
    return ((double)(r.v[0] >> 8) + 0.5) * (1.0 / 16777216.0);
  }
  double normal() {  // Box-Muller, one of the pair
    const double u1 = uniform(), u2 = uniform();
    return std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
  }
};

double gamma_draw(double a, Draws& d) {
  if (a < 1) return gamma_draw(a + 1, d) * std::pow(d.uniform(), 1.0 / a);
  const double dd = a - 1.0 / 3, c = 1 / std::sqrt(9 * dd);
  for (;;) {  // accepts with probability > 0.95
    double x, v;
    do {
      x = d.normal();
      v = 1 + c * x;
    } while (v <= 0);
    v = v * v * v;
    const double u = d.uniform();
    if (u < 1 - 0.0331 * x * x * x * x || std::log(u) < 0.5 * x * x + dd * (1 - v + std::log(v))) return dd * v;
  }
}

Draws draws(uint64_t seed, int64_t epoch, int64_t index, uint64_t what) {
  return Draws{data_rng_key(seed, RngStream::mixup, (uint64_t)epoch), (uint64_t)index * 2 + what};
}

}  // namespace

double mixup_lambda(double alpha, uint64_t seed, int64_t epoch, int64_t index) {
  if (!(alpha > 0)) throw Error("mixup: alpha must be > 0");
  Draws d = draws(seed, epoch, index, 0);
  const double g1 = gamma_draw(alpha, d), g2 = gamma_draw(alpha, d);
  return g1 + g2 > 0 ? g1 / (g1 + g2) : 0.5;
}

void mixup_permutation(int n, uint64_t seed, int64_t epoch, int64_t index, int32_t* perm) {
  for (int i = 0; i < n; ++i) perm[i] = i;
  Draws d = draws(seed, epoch, index, 1);
  for (int i = n - 1; i > 0; --i) {
    const int j = (int)bits_below(data_rng_bits(d.key, d.index, d.next++).v[0], (uint32_t)(i + 1));
    std::swap(perm[i], perm[j]);
  }
}

void mixup_batch(Batch& b, double alpha, uint64_t seed) {
  if (!(alpha > 0) || b.size < 2) return;
  const float lam = (float)mixup_lambda(alpha, seed, b.epoch, b.index);
  std::vector<int32_t> perm((size_t)b.size);
  mixup_permutation(b.size, seed, b.epoch, b.index, perm.data());
  const size_t px = (size_t)b.side * b.side, nc = (size_t)b.num_classes;
  // Out of place from a copy: image i reads image perm[i] as it was before the mixing.
  const std::vector<float> images(b.images, b.images + b.size * px), targets(b.targets, b.targets + b.size * nc);
  for (int i = 0; i < b.size; ++i) {
    const size_t j = (size_t)perm[(size_t)i];
    for (size_t k = 0; k < px; ++k) b.images[i * px + k] = lam * images[i * px + k] + (1 - lam) * images[j * px + k];
    for (size_t k = 0; k < nc; ++k) b.targets[i * nc + k] = lam * targets[i * nc + k] + (1 - lam) * targets[j * nc + k];
  }
}

}  // namespace emotune
