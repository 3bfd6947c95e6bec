// max_pool2d CUDA kernels against the CPU kernels on every shape of the pool table, forward and
// backward, with ties and NaN. Outputs are poisoned with NaN first, so an element a kernel forgets
// fails.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/max_pool2d.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

namespace {

// Values on a coarse grid (multiples of 1/4 in [-2, 2]): pooling windows get many ties, which
// exercises the first-maximum rule.
std::vector<float> coarse(size_t n, uint64_t seed) {
  std::vector<float> v = random_vector(n, seed, -2.0f, 2.0f);
  for (float& x : v) x = std::round(x * 4.0f) / 4.0f;
  return v;
}

}  // namespace

TEST_CASE("cuda max_pool2d: forward and backward match the CPU on every pool shape, ties and NaN included") {
  if (!emotune::testing::cuda_or_skip("cuda max_pool2d parity")) return;
  const int batch = testing::sanitize_quick() ? 1 : 3;
  int index = 0;
  for (const auto& c : testing::pool_cases()) {
    Pool2dShape p = c.shape;
    p.n = batch;
    std::vector<float> x = coarse(p.x_size(), 200 + index);
    if (index % 2 == 1) x[x.size() / 3] = std::numeric_limits<float>::quiet_NaN();  // a NaN wins its window
    const std::vector<float> dyv = random_vector(p.y_size(), 300 + index);
    std::vector<float> y_ref(p.y_size()), dx_ref(p.x_size());
    max_pool2d_forward_cpu(p, x.data(), y_ref.data());
    max_pool2d_backward_cpu(p, x.data(), dyv.data(), dx_ref.data());

    DeviceBuffer xd(x), dy(dyv), y(p.y_size()), dx(p.x_size());
    y.poison();
    dx.poison();
    max_pool2d_forward_cuda(p, xd.ptr, y.ptr);
    max_pool2d_backward_cuda(p, xd.ptr, dy.ptr, dx.ptr);
    INFO(c.name, " batch ", batch);
    // Forward selects an element, and backward adds the same dy values in the same window order
    // as the CPU (0 + dy of each window whose first maximum it is, windows in row-major order):
    // both are exact. A NaN output must be NaN on both (allclose counts NaN as a mismatch, so
    // matching NaNs are compared separately and then zeroed).
    const std::vector<float> y_got = y.host(), dx_got = dx.host();
    for (size_t i = 0; i < y_got.size(); ++i)
      if (std::isnan(y_ref[i])) CHECK(std::isnan(y_got[i]));
    std::vector<float> y_got_nonan = y_got, y_ref_nonan = y_ref;
    for (size_t i = 0; i < y_ref.size(); ++i)
      if (std::isnan(y_ref[i]) && std::isnan(y_got[i])) y_got_nonan[i] = y_ref_nonan[i] = 0;
    EMOTUNE_CHECK_CLOSE(allclose(y_got_nonan, y_ref_nonan, 0, 0));
    EMOTUNE_CHECK_CLOSE(allclose(dx_got, dx_ref, 0, 0));
    ++index;
  }
}
