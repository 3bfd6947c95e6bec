// softmax cross-entropy CUDA kernel against the CPU kernel: hard and soft targets, class weights,
// label smoothing, huge logits, more classes than a warp.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "kernels/cross_entropy.h"
#include "tests/cuda_testing.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

TEST_CASE("cuda softmax cross-entropy: loss and gradient match the CPU (hard, soft, weighted, smoothed, huge logits)") {
  if (!emotune::testing::cuda_or_skip("cuda cross-entropy parity")) return;
  struct Case {
    const char* name;
    int n, c;
    bool soft, weighted;
    float smoothing, logit_scale;
  };
  const Case cases[] = {
      {"hard labels, 7 classes", 16, 7, false, false, 0.0f, 3.0f},
      {"FER+ vote distributions, 8 classes", 33, 8, true, false, 0.0f, 3.0f},
      {"class weights + smoothing 0.1", 64, 7, false, true, 0.1f, 3.0f},
      {"logits of +-1e4 stay finite", 5, 7, false, true, 0.05f, 1e4f},
      {"40 classes (more than a warp)", 9, 40, true, true, 0.2f, 5.0f},
  };
  int index = 0;
  for (const Case& k : cases) {
    INFO(k.name);
    CrossEntropyShape p;
    p.n = k.n;
    p.c = k.c;
    const std::vector<float> z = random_vector((size_t)p.n * p.c, 800 + index, -k.logit_scale, k.logit_scale);
    std::vector<float> t((size_t)p.n * p.c, 0.0f);
    const std::vector<float> u = random_vector((size_t)p.n * p.c, 801 + index, 0.0f, 1.0f);
    for (int i = 0; i < p.n; ++i) {
      if (k.soft) {
        float s = 0;
        for (int j = 0; j < p.c; ++j) s += u[i * p.c + j];
        for (int j = 0; j < p.c; ++j) t[i * p.c + j] = u[i * p.c + j] / s;
      } else {
        t[i * p.c + (i * 5 + 3) % p.c] = 1.0f;
      }
    }
    const std::vector<float> wv = random_vector(p.c, 802 + index, 0.2f, 3.0f);
    const float* w_host = k.weighted ? wv.data() : nullptr;
    float loss_ref = 0;
    std::vector<float> g_ref((size_t)p.n * p.c);
    softmax_cross_entropy_cpu(p, z.data(), t.data(), w_host, k.smoothing, &loss_ref, g_ref.data());

    DeviceBuffer zd(z), td(t), wd(wv), loss(1), g(g_ref.size());
    loss.poison();
    g.poison();
    softmax_cross_entropy_cuda(p, zd.ptr, td.ptr, k.weighted ? wd.ptr : nullptr, k.smoothing, loss.ptr, g.ptr);
    // Both compute in double and round once to float: ~1 ulp. The gradient's atol covers
    // entries that cancel to ~0 (S softmax ~ w t'), whose inputs are O(1 / D).
    EMOTUNE_CHECK_CLOSE(allclose(loss.host(), std::vector<float>{loss_ref}, 0, 4 * kFloatEps));
    EMOTUNE_CHECK_CLOSE(allclose(g.host(), g_ref, 4 * kFloatEps / p.n, 4 * kFloatEps));
    CHECK(std::isfinite(loss.host()[0]));
    ++index;
  }
}
