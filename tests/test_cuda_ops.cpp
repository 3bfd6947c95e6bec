// The CUDA kernels other than conv2d, each against its CPU kernel on the shared shape table where
// the table has the op (pool, batch_norm, linear), forward and backward: max_pool2d, batch_norm,
// dropout (masks bit-identical), elementwise ops, linear (cuBLAS), softmax cross-entropy, SGD
// and Adam. Outputs are poisoned with NaN first, so an element a kernel forgets fails.
#include <doctest/doctest.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/max_pool2d.h"
#include "kernels/optim.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

namespace {

constexpr double kEps = std::numeric_limits<float>::epsilon();

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

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
    const double tight_rtol = 4 * kEps, tight_atol = 4 * kEps;
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), y_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(mean.host(), mean_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(invstd.host(), invstd_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(rm.host(), rm_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(rv.host(), rv_ref, tight_atol, tight_rtol));
    // Eval is float arithmetic; the GPU may fuse x * scale + shift into one FMA (one rounding
    // fewer): a few ulps of |x * scale| ~ 4.
    EMOTUNE_CHECK_CLOSE(allclose(ye.host(), ye_ref, 16 * kEps, 4 * kEps));
    // dx = k (M dy - sum dy - xhat sum dy xhat): the terms cancel, so the error is relative to
    // their size, ~M |dy| k ~ gamma invstd: an atol of a few float ulps of that.
    EMOTUNE_CHECK_CLOSE(allclose(dx.host(), dx_ref, 16 * kEps, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(dg.host(), dg_ref, tight_atol, tight_rtol));
    EMOTUNE_CHECK_CLOSE(allclose(db.host(), db_ref, tight_atol, tight_rtol));
    ++index;
  }
}

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
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), r, 4 * kEps, 0));
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
    EMOTUNE_CHECK_CLOSE(allclose(out.host(), std::vector<float>{r}, 0, 2 * kEps));
  }
}

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
    auto atol = [](double terms) { return 4 * kEps * terms; };
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
    EMOTUNE_CHECK_CLOSE(allclose(loss.host(), std::vector<float>{loss_ref}, 0, 4 * kEps));
    EMOTUNE_CHECK_CLOSE(allclose(g.host(), g_ref, 4 * kEps / p.n, 4 * kEps));
    CHECK(std::isfinite(loss.host()[0]));
    ++index;
  }
}

TEST_CASE("cuda sgd and adam: three fused steps match the CPU") {
  if (!emotune::testing::cuda_or_skip("cuda optimizer parity")) return;
  const int64_t n = 100003;
  const std::vector<float> w0 = random_vector(n, 900);
  std::vector<std::vector<float>> grads;
  for (int s = 0; s < 3; ++s) grads.push_back(random_vector(n, 901 + s));
  // The GPU fuses multiply-adds (one rounding instead of two) in each update; over three steps
  // w (|w| <= ~1) drifts by a few ulps at most.
  const double atol = 16 * kEps, rtol = 16 * kEps;

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
