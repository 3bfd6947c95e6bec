// dropout CUDA kernels against the CPU kernels: masks and values bit-identical for the same seed
// and offset (Philox on both devices).
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/dropout.h"
#include "tests/cuda_testing.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::bit_equal;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda dropout: masks and values are bit-identical to the CPU for the same seed and offset") {
  if (!emotune::testing::cuda_or_skip("cuda dropout parity")) return;
  const int64_t n = testing::sanitize_quick() ? 10007 : 1000003;
  const std::vector<float> xv = random_vector(n, 500);
  DeviceBuffer x(xv), y(n), dx(n);
  for (float p : {0.0f, 0.3f, 0.6f}) {
    for (uint64_t offset : {uint64_t(0), uint64_t(123456789012ull)}) {
      INFO("p ", p, " offset ", offset);
      const uint64_t seed = 0x5eedull + (uint64_t)(p * 10);
      std::vector<float> y_ref(n), dx_ref(n);
      dropout_forward_cpu(n, xv.data(), p, seed, offset, y_ref.data());
      dropout_backward_cpu(n, xv.data(), p, seed, offset, dx_ref.data());
      y.poison();
      dx.poison();
      dropout_forward_cuda(n, x.ptr, p, seed, offset, y.ptr);
      dropout_backward_cuda(n, x.ptr, p, seed, offset, dx.ptr);
      // One float multiply by the same scale per kept element, nothing else: exact equality.
      const std::vector<float> yg = y.host(), dxg = dx.host();
      CHECK(bit_equal(yg, y_ref));
      CHECK(bit_equal(dxg, dx_ref));
      int64_t dropped = 0;
      for (float v : yg) dropped += v == 0.0f;
      const double rate = (double)dropped / n;
      // The mask is not degenerate: the drop rate is p within ~6 standard deviations
      // (sqrt(p (1 - p) / n) <= 0.005 for the quick size).
      CHECK(std::fabs(rate - p) < 0.03);
    }
  }
}
