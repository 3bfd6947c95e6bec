// linear CUDA kernels (cuBLAS) against the CPU reference on every shape of the linear table,
// forward and backward. Outputs are poisoned with NaN first, so an element a kernel forgets fails.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "kernels/linear.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda linear (cuBLAS): forward and backward match the CPU reference on every linear shape") {
  if (!emotune::testing::cuda_or_skip("cuda linear parity")) return;
  const int batch = testing::sanitize_quick() ? 3 : 16;
  int index = 0;
  for (const auto& c : testing::linear_cases()) {
    LinearShape p = c.shape;
    p.n = batch;
    INFO(c.name, " batch ", batch);
    const std::vector<float> xv = random_vector((size_t)p.n * p.in, 700 + index);
    const std::vector<float> wv = random_vector((size_t)p.out * p.in, 701 + index);
    const std::vector<float> bv = random_vector(p.out, 702 + index);
    const std::vector<float> dyv = random_vector((size_t)p.n * p.out, 703 + index);
    std::vector<float> y_ref((size_t)p.n * p.out), dx_ref((size_t)p.n * p.in), dw_ref((size_t)p.out * p.in), db_ref(p.out);
    const bool bias = index % 2 == 0;
    linear_forward_ref_cpu(p, xv.data(), wv.data(), bias ? bv.data() : nullptr, y_ref.data());
    linear_backward_ref_cpu(p, xv.data(), wv.data(), dyv.data(), dx_ref.data(), dw_ref.data(), db_ref.data());

    DeviceBuffer x(xv), w(wv), b(bv), dy(dyv), y(y_ref.size()), dx(dx_ref.size()), dw(dw_ref.size()), db(p.out);
    y.poison();
    dx.poison();
    dw.poison();
    db.poison();
    linear_forward_cuda(p, x.ptr, w.ptr, bias ? b.ptr : nullptr, y.ptr);
    linear_backward_cuda(p, x.ptr, w.ptr, dy.ptr, dx.ptr, dw.ptr, db.ptr);
    // Float sums of `terms` products of values in [-1, 1] in another order: 4 eps terms, as for
    // conv2d (the random-walk bound; cuBLAS may also split the reduction).
    auto atol = [](double terms) { return 4 * kFloatEps * terms; };
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), y_ref, atol(p.in + 1), 1e-5));
    EMOTUNE_CHECK_CLOSE(allclose(dx.host(), dx_ref, atol(p.out), 1e-5));
    EMOTUNE_CHECK_CLOSE(allclose(dw.host(), dw_ref, atol(p.n), 1e-5));
    EMOTUNE_CHECK_CLOSE(allclose(db.host(), db_ref, atol(p.n), 1e-5));
    // Outputs that are not wanted may be null.
    linear_backward_cuda(p, x.ptr, w.ptr, dy.ptr, nullptr, dw.ptr, nullptr);
    EMOTUNE_CHECK_CLOSE(allclose(dw.host(), dw_ref, atol(p.n), 1e-5));
    ++index;
  }
}
