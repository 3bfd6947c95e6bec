// batch_norm CUDA kernels against the CPU kernels on every shape of the batch_norm table: training
// forward (with the running statistics), eval forward and backward. Outputs are poisoned with NaN
// first, so an element a kernel forgets fails.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "kernels/batch_norm.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda batch_norm: training forward, eval forward and backward match the CPU on every shape") {
  if (!emotune::testing::cuda_or_skip("cuda batch_norm parity")) return;
  const int batch = testing::sanitize_quick() ? 2 : 4;
  int index = 0;
  for (const auto& c : testing::batch_norm_cases()) {
    BatchNormShape p = c.shape;
    p.n = batch;
    INFO(c.name, " batch ", batch);
    // x centred on 3, not 0: a one-pass E[x^2] - mean^2 would lose digits here; two passes don't.
    const std::vector<float> xv = random_vector(p.size(), 400 + index, 2.0f, 4.0f);
    const std::vector<float> gv = random_vector(p.c, 401 + index, 0.5f, 1.5f);
    const std::vector<float> bv = random_vector(p.c, 402 + index);
    const std::vector<float> rm0 = random_vector(p.c, 403 + index), rv0 = random_vector(p.c, 404 + index, 0.5f, 2.0f);
    const std::vector<float> dyv = random_vector(p.size(), 405 + index);
    const float eps = 1e-3f, momentum = 0.01f;

    std::vector<float> y_ref(p.size()), mean_ref(p.c), invstd_ref(p.c), rm_ref = rm0, rv_ref = rv0;
    batch_norm_forward_train_cpu(p, xv.data(), gv.data(), bv.data(), eps, momentum, rm_ref.data(), rv_ref.data(),
                                 y_ref.data(), mean_ref.data(), invstd_ref.data());
    std::vector<float> ye_ref(p.size());
    batch_norm_forward_eval_cpu(p, xv.data(), gv.data(), bv.data(), rm0.data(), rv0.data(), eps, ye_ref.data());
    std::vector<float> dx_ref(p.size()), dg_ref(p.c), db_ref(p.c);
    batch_norm_backward_cpu(p, xv.data(), dyv.data(), gv.data(), mean_ref.data(), invstd_ref.data(), dx_ref.data(),
                            dg_ref.data(), db_ref.data());

    DeviceBuffer x(xv), g(gv), b(bv), rm(rm0), rv(rv0), dy(dyv);
    DeviceBuffer y(p.size()), mean(p.c), invstd(p.c), ye(p.size()), dx(p.size()), dg(p.c), db(p.c);
    y.poison();
    ye.poison();
    dx.poison();
    batch_norm_forward_train_cuda(p, x.ptr, g.ptr, b.ptr, eps, momentum, rm.ptr, rv.ptr, y.ptr, mean.ptr, invstd.ptr);
    // Eval reads the running statistics from before the training step, as the CPU call did.
    DeviceBuffer rm_eval(rm0), rv_eval(rv0);
    batch_norm_forward_eval_cuda(p, x.ptr, g.ptr, b.ptr, rm_eval.ptr, rv_eval.ptr, eps, ye.ptr);
    // Backward from the CPU's saved statistics, so it is checked on its own.
    DeviceBuffer mean_cpu(mean_ref), invstd_cpu(invstd_ref);
    batch_norm_backward_cuda(p, x.ptr, dy.ptr, g.ptr, mean_cpu.ptr, invstd_cpu.ptr, dx.ptr, dg.ptr, db.ptr);

    // Training forward and backward compute in double on both devices and round once to float;
    // only the order of the double sums differs, so results agree to ~1 float ulp (2^-23 relative;
    // the atol covers outputs near 0, whose ulp is tiny but whose inputs were O(1)).
    const double tight_rtol = 4 * kFloatEps, tight_atol = 4 * kFloatEps;
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), y_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(mean.host(), mean_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(invstd.host(), invstd_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(rm.host(), rm_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(rv.host(), rv_ref, tight_atol, tight_rtol));
    // Eval is float arithmetic; the GPU may fuse x * scale + shift into one FMA (one rounding
    // fewer): a few ulps of |x * scale| ~ 4.
    EMOTUNE_CHECK_CLOSE(allclose(ye.host(), ye_ref, 16 * kFloatEps, 4 * kFloatEps));
    // dx = k (M dy - sum dy - xhat sum dy xhat): the terms cancel, so the error is relative to
    // their size, ~M |dy| k ~ gamma invstd: an atol of a few float ulps of that.
    EMOTUNE_CHECK_CLOSE(allclose(dx.host(), dx_ref, 16 * kFloatEps, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(dg.host(), dg_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(db.host(), db_ref, tight_atol, tight_rtol));
    ++index;
  }
}
