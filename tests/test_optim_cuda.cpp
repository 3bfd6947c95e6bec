// Optimizer CUDA kernels (SGD plain, momentum, Nesterov; Adam, Adam + L2, AdamW) against the CPU
// kernels over three fused steps.
#include <doctest/doctest.h>

#include <limits>
#include <vector>

#include "kernels/optim.h"
#include "tests/cuda_testing.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda sgd and adam: three fused steps match the CPU") {
  if (!emotune::testing::cuda_or_skip("cuda optimizer parity")) return;
  const int64_t n = 100003;
  const std::vector<float> w0 = random_vector(n, 900);
  std::vector<std::vector<float>> grads;
  for (int s = 0; s < 3; ++s) grads.push_back(random_vector(n, 901 + s));
  // The GPU fuses multiply-adds (one rounding instead of two) in each update; over three steps
  // w (|w| <= ~1) drifts by a few ulps at most.
  const double atol = 16 * kFloatEps, rtol = 16 * kFloatEps;

  struct SgdCase {
    const char* name;
    SgdParams p;
  };
  const SgdCase sgd_cases[] = {
      {"plain + weight decay", {0.1f, 0.0f, 1e-2f, false}},
      {"momentum", {0.05f, 0.9f, 0.0f, false}},
      {"nesterov + weight decay", {0.05f, 0.9f, 5e-4f, true}},
  };
  for (const SgdCase& k : sgd_cases) {
    INFO("sgd ", k.name);
    std::vector<float> w = w0, v(n, 0.0f);
    DeviceBuffer wd(w0), vd(v);
    for (int s = 0; s < 3; ++s) {
      DeviceBuffer gd(grads[s]);
      sgd_update_cpu(n, k.p, w.data(), grads[s].data(), v.data());
      sgd_update_cuda(n, k.p, wd.ptr, gd.ptr, vd.ptr);
    }
    EMOTUNE_CHECK_CLOSE(allclose(wd.host(), w, atol, rtol));
    if (k.p.momentum != 0.0f) EMOTUNE_CHECK_CLOSE(allclose(vd.host(), v, atol, rtol));
  }

  struct AdamCase {
    const char* name;
    AdamParams p;
  };
  AdamParams adam;
  adam.lr = 1e-3f;
  AdamParams adam_l2 = adam;
  adam_l2.weight_decay = 1e-2f;
  AdamParams adamw = adam_l2;
  adamw.decoupled = true;
  const AdamCase adam_cases[] = {{"adam", adam}, {"adam + L2", adam_l2}, {"adamw", adamw}};
  for (const AdamCase& k : adam_cases) {
    INFO(k.name);
    std::vector<float> w = w0, m(n, 0.0f), v(n, 0.0f);
    DeviceBuffer wd(w0), md(m), vd(v);
    for (int s = 0; s < 3; ++s) {
      AdamParams p = k.p;
      p.step = s + 1;
      DeviceBuffer gd(grads[s]);
      adam_update_cpu(n, p, w.data(), grads[s].data(), m.data(), v.data());
      adam_update_cuda(n, p, wd.ptr, gd.ptr, md.ptr, vd.ptr);
    }
    EMOTUNE_CHECK_CLOSE(allclose(wd.host(), w, atol, rtol));
    EMOTUNE_CHECK_CLOSE(allclose(md.host(), m, atol, rtol));
    EMOTUNE_CHECK_CLOSE(allclose(vd.host(), v, atol, rtol));
  }
}
