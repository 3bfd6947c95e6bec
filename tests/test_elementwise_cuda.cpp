// elementwise CUDA kernels against the CPU kernels, in place too. Outputs are poisoned with NaN
// first, so an element a kernel forgets fails.
#include <doctest/doctest.h>

#include <cstring>
#include <limits>
#include <vector>

#include "kernels/elementwise.h"
#include "tests/cuda_testing.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::bit_equal;
using emotune::testing::kFloatEps;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda elementwise ops match the CPU (in place too)") {
  if (!emotune::testing::cuda_or_skip("cuda elementwise parity")) return;
  const int64_t n = 300007;  // not a multiple of any block size
  const std::vector<float> av = random_vector(n, 600), bv = random_vector(n, 601);
  DeviceBuffer a(av), b(bv), y(n);
  auto want = [&](auto fn) {
    std::vector<float> r(n);
    fn(r.data());
    return r;
  };
  // Single float operations: the same rounding on both devices, so results are exact.
  y.poison();
  fill_cuda(n, 2.5f, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { fill_cpu(n, 2.5f, r); })));
  add_cuda(n, a.ptr, b.ptr, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { add_cpu(n, av.data(), bv.data(), r); })));
  mul_cuda(n, a.ptr, b.ptr, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { mul_cpu(n, av.data(), bv.data(), r); })));
  scale_cuda(n, -0.75f, a.ptr, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { scale_cpu(n, -0.75f, av.data(), r); })));
  relu_forward_cuda(n, a.ptr, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { relu_forward_cpu(n, av.data(), r); })));
  relu_backward_cuda(n, a.ptr, b.ptr, y.ptr);
  CHECK(bit_equal(y.host(), want([&](float* r) { relu_backward_cpu(n, av.data(), bv.data(), r); })));

  // axpy may be one FMA on the GPU (a mul and an add on the CPU): within an ulp of |y| <= 2.
  {
    y.upload(bv);
    axpy_cuda(n, 0.3f, a.ptr, y.ptr);
    std::vector<float> r = bv;
    axpy_cpu(n, 0.3f, av.data(), r.data());
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), r, 4 * kFloatEps, 0));
  }
  // In place: y = a + y and y = relu(y).
  {
    y.upload(bv);
    add_cuda(n, a.ptr, y.ptr, y.ptr);
    relu_forward_cuda(n, y.ptr, y.ptr);
    std::vector<float> r = bv;
    add_cpu(n, av.data(), r.data(), r.data());
    relu_forward_cpu(n, r.data(), r.data());
    CHECK(bit_equal(y.host(), r));
  }
  // scale_dev with alpha aliasing y[0]: every element must use the old y[0].
  {
    y.upload(bv);
    scale_dev_cuda(n, y.ptr, a.ptr, y.ptr);
    std::vector<float> r = bv;
    scale_dev_cpu(n, r.data(), av.data(), r.data());
    CHECK(bit_equal(y.host(), r));
  }
  // sum_squares: double sums in both, different order, rounded once to float.
  {
    DeviceBuffer out(1);
    out.poison();
    sum_squares_cuda(n, a.ptr, out.ptr);
    float r = 0;
    sum_squares_cpu(n, av.data(), &r);
    EMOTUNE_CHECK_CLOSE(allclose(out.host(), std::vector<float>{r}, 0, 2 * kFloatEps));
  }
}
