// CPU kernels other than conv2d / pool / batch norm: dropout (Philox), elementwise ops, linear
// (OpenBLAS vs reference, FD gradcheck), softmax cross-entropy (hand values, weights, smoothing,
// soft targets, extreme logits, FD gradcheck), SGD and Adam/AdamW against independent double math.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/cross_entropy_ref.h"
#include "kernels/cpu/linear_ref.h"
#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/optim.h"
#include "kernels/philox.h"
#include "kernels/runtime.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;
using emotune::testing::random_vector_double;

// ---------------------------------------------------------------------------------------------
// Philox and dropout

TEST_CASE("philox4x32-10 reproduces the Random123 known-answer vectors") {
  // tests/kat_vectors of github.com/DEShawResearch/random123: counter words, key words, output.
  auto check = [](uint64_t ctr_lo, uint64_t ctr_hi, uint64_t key, std::vector<uint32_t> want) {
    Philox4 r = philox4x32(ctr_lo, ctr_hi, key);
    for (int i = 0; i < 4; ++i) CHECK(r.v[i] == want[i]);
  };
  check(0, 0, 0, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u});
  check(~0ull, ~0ull, ~0ull, {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu});
  check(0x85a308d3243f6a88ull, 0x0370734413198a2eull, 0x299f31d0a4093822ull,
        {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u});
}

TEST_CASE("dropout: seeded mask, binomial keep rate, inverted scaling, backward reuses the mask") {
  const int64_t n = 1000000;
  const float p = 0.3f;
  const float scale = 1.0f / (1.0f - p);
  auto x = random_vector(n, 71, 0.5f, 1.5f);  // never zero: a dropped element is unambiguous
  std::vector<float> y(n), y2(n), y3(n);
  dropout_forward_cpu(n, x.data(), p, 1234, 0, y.data());
  dropout_forward_cpu(n, x.data(), p, 1234, 0, y2.data());
  dropout_forward_cpu(n, x.data(), p, 1235, 0, y3.data());

  EMOTUNE_CHECK_CLOSE(allclose(y2, y, 0, 0));  // same seed: bit-identical

  int64_t kept = 0, bad_values = 0, differs = 0;
  for (int64_t i = 0; i < n; ++i) {
    if (y[i] != 0.0f) {
      ++kept;
      if (y[i] != x[i] * scale) ++bad_values;  // the same float expression: exact
    }
    differs += (y[i] != 0.0f) != (y3[i] != 0.0f);
  }
  CHECK(bad_values == 0);
  // kept ~ Binomial(n, 0.7): sd = sqrt(n * 0.7 * 0.3) = 458; 6 sd (false alarm ~2e-9).
  const double sd = std::sqrt(n * 0.7 * 0.3);
  CHECK(std::fabs((double)kept - 0.7 * n) < 6 * sd);
  // Two independent masks disagree on 2 * 0.7 * 0.3 = 42% of elements; 6 sd again.
  const double sd2 = std::sqrt(n * 0.42 * 0.58);
  CHECK(std::fabs((double)differs - 0.42 * n) < 6 * sd2);

  // The mask of element i is a function of (seed, offset + i): two halves with their offsets
  // reproduce the whole.
  std::vector<float> halves(n);
  dropout_forward_cpu(n / 2, x.data(), p, 1234, 0, halves.data());
  dropout_forward_cpu(n - n / 2, x.data() + n / 2, p, 1234, n / 2, halves.data() + n / 2);
  EMOTUNE_CHECK_CLOSE(allclose(halves, y, 0, 0));  // identical computation per element

  // Backward: dx = dy * scale where the forward kept, else 0.
  auto dy = random_vector(n, 72);
  std::vector<float> dx(n, NAN), dx_want(n);
  for (int64_t i = 0; i < n; ++i) dx_want[i] = y[i] != 0.0f ? dy[i] * scale : 0.0f;
  dropout_backward_cpu(n, dy.data(), p, 1234, 0, dx.data());
  EMOTUNE_CHECK_CLOSE(allclose(dx, dx_want, 0, 0));  // same mask, same product: exact

  // p = 0 is the identity (scale exactly 1).
  std::vector<float> id(n);
  dropout_forward_cpu(n, x.data(), 0.0f, 99, 7, id.data());
  EMOTUNE_CHECK_CLOSE(allclose(id, x, 0, 0));

  // The CPU and CUDA kernels share this rule; pin the first elements so a change to it is seen.
  for (int64_t i = 0; i < 64; ++i) CHECK((y[i] != 0.0f) == (philox_uniform(1234, (uint64_t)i) >= p));
}

// ---------------------------------------------------------------------------------------------
// elementwise

TEST_CASE("elementwise ops, small and above the threading threshold, in place allowed") {
  for (int64_t n : {int64_t(7), int64_t(200003)}) {
    CAPTURE(n);
    auto a = random_vector(n, 81), b = random_vector(n, 82);
    std::vector<float> y(n), want(n);

    fill_cpu(n, 2.5f, y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = 2.5f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));  // every elementwise result is one float op: exact

    add_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] + b[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    mul_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] * b[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    scale_cpu(n, -3.0f, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = -3.0f * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    y = b;
    axpy_cpu(n, 0.5f, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = b[i] + 0.5f * a[i];
    // y += alpha * x may be fused into one fma (no second rounding): one ulp of |y| <= 1.5.
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 2e-7, 2e-7));

    // in place: y == x
    y = a;
    scale_cpu(n, 2.0f, y.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = 2.0f * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    // scale_dev reads the scale from device memory, even when it is the first element of y
    y = a;
    const float a0 = a[0];
    scale_dev_cpu(n, y.data(), y.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a0 * a[i];
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    relu_forward_cpu(n, a.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] > 0 ? a[i] : 0.0f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    relu_backward_cpu(n, a.data(), b.data(), y.data());
    for (int64_t i = 0; i < n; ++i) want[i] = a[i] > 0 ? b[i] : 0.0f;
    EMOTUNE_CHECK_CLOSE(allclose(y, want, 0, 0));

    float ss = NAN;
    sum_squares_cpu(n, a.data(), &ss);
    double exact = 0;
    for (int64_t i = 0; i < n; ++i) exact += (double)a[i] * a[i];
    // Summed in double, rounded once to float: half an ulp.
    CHECK(std::fabs(ss - exact) <= 6e-8 * exact);
  }
  // relu at the kink gets 0 gradient; a NaN passes relu forward (so a NaN reaches the loss).
  const std::vector<float> x = {0.0f, -0.0f, NAN, 1.0f, -1.0f}, dy = {5, 5, 5, 5, 5};
  std::vector<float> y(5), dx(5);
  relu_forward_cpu(5, x.data(), y.data());
  relu_backward_cpu(5, x.data(), dy.data(), dx.data());
  CHECK(y[0] == 0.0f);
  CHECK(y[1] == 0.0f);
  CHECK(std::isnan(y[2]));
  CHECK(y[3] == 1.0f);
  CHECK(y[4] == 0.0f);
  CHECK(dx[0] == 0.0f);
  CHECK(dx[3] == 5.0f);
  CHECK(dx[4] == 0.0f);
  float ss = NAN;
  sum_squares_cpu(0, x.data(), &ss);
  CHECK(ss == 0.0f);
}

TEST_CASE("runtime: 64-byte aligned allocations, zero size allowed, copy is a byte copy") {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(4096 + 4)}) {
    void* p = alloc_cpu(bytes);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    free_cpu(p);
  }
  const std::vector<float> src = random_vector(100, 5);
  std::vector<float> dst(100);
  copy_cpu(dst.data(), src.data(), 100 * sizeof(float));
  EMOTUNE_CHECK_CLOSE(allclose(dst, src, 0, 0));  // bytes: exact
  CHECK(device_count_cpu() == 1);
}

// ---------------------------------------------------------------------------------------------
// linear

TEST_CASE("linear OpenBLAS path matches the reference loops on the linear table") {
  for (const auto& lc : testing::linear_cases()) {
    for (int batch : {1, 16}) {
      LinearShape p = lc.shape;
      p.n = batch;
      CAPTURE(lc.name);
      CAPTURE(batch);
      auto x = random_vector((size_t)p.n * p.in, 91), w = random_vector((size_t)p.out * p.in, 92);
      auto b = random_vector(p.out, 93), dy = random_vector((size_t)p.n * p.out, 94);
      std::vector<float> y(p.n * p.out, NAN), y_ref(p.n * p.out);
      linear_forward_cpu(p, x.data(), w.data(), b.data(), y.data());
      linear_forward_ref_cpu(p, x.data(), w.data(), b.data(), y_ref.data());
      // Sums of IN products of values in [-1, 1] in two orders: 4 float eps per term (the conv2d
      // test's bound, same reasoning), plus 1e-5 relative.
      const double eps4 = 4.0 * 1.1920929e-7;
      EMOTUNE_CHECK_CLOSE(allclose(y, y_ref, eps4 * (p.in + 1), 1e-5));
      linear_forward_cpu(p, x.data(), w.data(), nullptr, y.data());
      linear_forward_ref_cpu(p, x.data(), w.data(), nullptr, y_ref.data());
      EMOTUNE_CHECK_CLOSE(allclose(y, y_ref, eps4 * p.in, 1e-5));  // same, without the bias

      std::vector<float> dx(p.n * p.in, NAN), dw(p.out * p.in, NAN), db(p.out, NAN);
      std::vector<float> dx_ref(p.n * p.in), dw_ref(p.out * p.in), db_ref(p.out);
      linear_backward_cpu(p, x.data(), w.data(), dy.data(), dx.data(), dw.data(), db.data());
      linear_backward_ref_cpu(p, x.data(), w.data(), dy.data(), dx_ref.data(), dw_ref.data(), db_ref.data());
      EMOTUNE_CHECK_CLOSE(allclose(dx, dx_ref, eps4 * p.out, 1e-5));  // sums of OUT products
      EMOTUNE_CHECK_CLOSE(allclose(dw, dw_ref, eps4 * p.n, 1e-5));    // sums of N products
      EMOTUNE_CHECK_CLOSE(allclose(db, db_ref, eps4 * p.n, 1e-5));    // sums of N values

      // Null outputs are skipped and the others still written.
      std::vector<float> only_dw(p.out * p.in, NAN);
      linear_backward_cpu(p, x.data(), w.data(), dy.data(), nullptr, only_dw.data(), nullptr);
      EMOTUNE_CHECK_CLOSE(allclose(only_dw, dw, 0, 0));  // the same sgemm call: bit-identical
    }
  }
}

// L = sum(y .* r) is linear in x, w and b: central differences are exact up to rounding
// (~1e-16 * |L| / h ~ 1e-9 here); 1e-6 keeps a wide margin against any indexing error (~0.1).
TEST_CASE("linear reference backward matches finite differences in double") {
  LinearShape p;
  p.n = 3;
  p.in = 5;
  p.out = 4;
  auto x = random_vector_double(p.n * p.in, 101), w = random_vector_double(p.out * p.in, 102);
  auto b = random_vector_double(p.out, 103), r = random_vector_double(p.n * p.out, 104);
  std::vector<double> y(p.n * p.out);
  auto loss = [&]() {
    linear_forward_ref<double>(p, x.data(), w.data(), b.data(), y.data());
    return testing::dot(y, r);
  };
  std::vector<double> dx(p.n * p.in), dw(p.out * p.in), db(p.out);
  linear_backward_ref<double>(p, x.data(), w.data(), r.data(), dx.data(), dw.data(), db.data());
  bool ok;
  std::string msg =
      testing::close_double(dx, testing::numeric_grad(x, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // see above
  CHECK_MESSAGE(ok, "dx: " << msg);
  msg =
      testing::close_double(dw, testing::numeric_grad(w, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // same bound
  CHECK_MESSAGE(ok, "dw: " << msg);
  msg =
      testing::close_double(db, testing::numeric_grad(b, loss, 1, 1e-6), 1e-6, 1e-6, &ok);  // same bound
  CHECK_MESSAGE(ok, "db: " << msg);
}

// ---------------------------------------------------------------------------------------------
// softmax cross-entropy

TEST_CASE("cross entropy: 2-class hand values, class weights, label smoothing, soft targets") {
  const float ln3 = std::log(3.0f);
  CrossEntropyShape p{2, 2};
  // Both rows have logits (0, ln 3): softmax (1/4, 3/4).
  const std::vector<float> z = {0, ln3, 0, ln3};
  float loss = NAN;
  std::vector<float> dz(4, NAN);
  // The reference sums in double; the float results carry a few ulps of the float log/exp inputs.
  const double tol = 1e-6;

  SUBCASE("one-hot, no weights: mean of -log p") {
    const std::vector<float> t = {0, 1, 1, 0};  // row 0 is class 1, row 1 is class 0
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
    CHECK(std::fabs(loss - (std::log(4.0 / 3) + std::log(4.0)) / 2) < tol);
    // dz = (softmax - t) / N
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.125f, -0.125f, -0.375f, 0.375f}, tol, 0));
  }
  SUBCASE("class weights (3, 1): PyTorch's weighted mean") {
    const std::vector<float> t = {0, 1, 1, 0}, w = {3, 1};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), w.data(), 0.0f, &loss, dz.data());
    // (w1 * log(4/3) + w0 * log 4) / (w1 + w0)
    CHECK(std::fabs(loss - (1 * std::log(4.0 / 3) + 3 * std::log(4.0)) / 4) < tol);
    // row 0: 1 * (1/4 - 0, 3/4 - 1) / 4;  row 1: 3 * (1/4 - 1, 3/4 - 0) / 4
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.0625f, -0.0625f, -0.5625f, 0.5625f}, tol, 0));
  }
  SUBCASE("label smoothing 0.1: targets (0.05, 0.95)") {
    const std::vector<float> t = {0, 1, 0, 1};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.1f, &loss, dz.data());
    // Each row: -(0.05 log 1/4 + 0.95 log 3/4); the mean of two equal rows is one row.
    CHECK(std::fabs(loss - -(0.05 * std::log(0.25) + 0.95 * std::log(0.75))) < tol);
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.1f, -0.1f, 0.1f, -0.1f}, tol, 0));  // (1/4 - 0.05) / 2
  }
  SUBCASE("soft targets (FER+ votes)") {
    const std::vector<float> t = {0.2f, 0.8f, 0.5f, 0.5f};
    softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
    const double l0 = -(0.2 * std::log(0.25) + 0.8 * std::log(0.75));
    const double l1 = -(0.5 * std::log(0.25) + 0.5 * std::log(0.75));
    CHECK(std::fabs(loss - (l0 + l1) / 2) < tol);
    EMOTUNE_CHECK_CLOSE(allclose(dz, {0.025f, -0.025f, -0.125f, 0.125f}, tol, 0));  // (p - t) / 2
  }
}

TEST_CASE("cross entropy with extreme logits stays finite and exact") {
  CrossEntropyShape p{2, 3};
  const std::vector<float> z = {1e4f, -1e4f, 0.0f, 1e4f, 1e4f, -1e4f};
  const std::vector<float> t = {0, 1, 0, 1, 0, 0};
  float loss = NAN;
  std::vector<float> dz(6, NAN);
  softmax_cross_entropy_cpu(p, z.data(), t.data(), nullptr, 0.0f, &loss, dz.data());
  // Row 0: -log softmax_1 = 2e4 (exp(-1e4) and exp(-2e4) vanish next to 1); row 1: log 2.
  CHECK(std::isfinite(loss));
  CHECK(std::fabs(loss - (2e4 + std::log(2.0)) / 2) < 1e-2);  // 1e-2: the float ulp at 1e4 is 1e-3
  // dz = (softmax - t) / 2: row 0 (1, -1, 0) / 2, row 1 (-1/4, 1/4, 0)
  EMOTUNE_CHECK_CLOSE(allclose(dz, {0.5f, -0.5f, 0.0f, -0.25f, 0.25f, 0.0f}, 1e-7, 0));  // exp underflows to 0 exactly
}

// The loss is smooth in the logits: truncation ~h^2 |f'''| ~ 1e-12, rounding ~1e-16 / h = 1e-10;
// 1e-7 absolute and 1e-6 relative leaves room, and a missing weight or smoothing term is ~1e-2.
TEST_CASE("cross entropy gradient matches finite differences in double (weights, smoothing, soft targets)") {
  CrossEntropyShape p{5, 7};
  auto z = random_vector_double(35, 111, -4, 4);
  auto t = random_vector_double(35, 112, 0, 1);
  for (int i = 0; i < 5; ++i) {  // normalise each row into a distribution
    double s = 0;
    for (int c = 0; c < 7; ++c) s += t[i * 7 + c];
    for (int c = 0; c < 7; ++c) t[i * 7 + c] /= s;
  }
  auto w = random_vector_double(7, 113, 0.5, 2);
  std::vector<double> dz(35), scratch(35);
  double l = 0;
  auto loss = [&]() {
    softmax_cross_entropy_ref<double>(p, z.data(), t.data(), w.data(), 0.1, &l, scratch.data());
    return l;
  };
  softmax_cross_entropy_ref<double>(p, z.data(), t.data(), w.data(), 0.1, &l, dz.data());
  bool ok;
  std::string msg =
      testing::close_double(dz, testing::numeric_grad(z, loss, 1, 1e-6), 1e-7, 1e-6, &ok);  // see above
  CHECK_MESSAGE(ok, msg);

  // The float kernel against the double reference on the same (float-representable) inputs.
  std::vector<float> zf(z.begin(), z.end()), tf(t.begin(), t.end()), wf(w.begin(), w.end()), dzf(35);
  std::vector<double> zd(zf.begin(), zf.end()), td(tf.begin(), tf.end()), wd(wf.begin(), wf.end());
  float lf;
  softmax_cross_entropy_cpu(p, zf.data(), tf.data(), wf.data(), 0.1f, &lf, dzf.data());
  softmax_cross_entropy_ref<double>(p, zd.data(), td.data(), wd.data(), (double)0.1f, &l, dz.data());
  std::vector<float> dzd(dz.begin(), dz.end());
  CHECK(std::fabs(lf - l) <= 1e-6 * std::fabs(l));                  // one float rounding of the loss
  EMOTUNE_CHECK_CLOSE(allclose(dzf, dzd, 1e-8, 1e-6));              // one rounding of each gradient
}

// ---------------------------------------------------------------------------------------------
// optimizers

TEST_CASE("sgd: plain, momentum, Nesterov and weight decay, by hand") {
  // w = 1, g = 1 every step, lr 0.1.
  auto run = [](SgdParams p, int steps) {
    float w = 1.0f, g = 1.0f, v = 0.0f;
    for (int i = 0; i < steps; ++i) sgd_update_cpu(1, p, &w, &g, &v);
    return w;
  };
  SgdParams p;
  p.lr = 0.1f;
  // Each step is a few float operations on values near 1: a few ulps.
  const double tol = 1e-6;
  CHECK(std::fabs(run(p, 2) - 0.8) < tol);  // w -= 0.1 twice
  p.momentum = 0.9f;
  // v: 1, 1.9, 2.71; w: 0.9, 0.71, 0.439
  CHECK(std::fabs(run(p, 3) - 0.439) < tol);
  p.nesterov = true;
  // step = g + 0.9 v: 1.9 then 2.71; w: 0.81, 0.539
  CHECK(std::fabs(run(p, 2) - 0.539) < tol);
  SgdParams d;
  d.lr = 0.1f;
  d.weight_decay = 0.1f;
  // g' = 1 + 0.1 * 1 = 1.1: w = 0.89; then g' = 1 + 0.089 = 1.089: w = 0.7811
  CHECK(std::fabs(run(d, 2) - 0.7811) < tol);
}

TEST_CASE("sgd and adam/adamw follow PyTorch's formulas over several steps (double math in the test)") {
  const int n = 100003;  // above the threading threshold
  auto w0 = random_vector(n, 121);
  for (bool nesterov : {false, true}) {
    CAPTURE(nesterov);
    SgdParams p;
    p.lr = 0.05f;
    p.momentum = 0.8f;
    p.weight_decay = 0.01f;
    p.nesterov = nesterov;
    std::vector<float> w = w0, v(n, 0.0f);
    std::vector<double> wd(w0.begin(), w0.end()), vd(n, 0.0);
    for (int step = 0; step < 4; ++step) {
      auto g = random_vector(n, 130 + step);
      sgd_update_cpu(n, p, w.data(), g.data(), v.data());
      for (int i = 0; i < n; ++i) {
        const double gi = g[i] + (double)p.weight_decay * wd[i];
        vd[i] = (double)p.momentum * vd[i] + gi;
        wd[i] -= (double)p.lr * (nesterov ? gi + (double)p.momentum * vd[i] : vd[i]);
      }
    }
    std::vector<float> want(wd.begin(), wd.end());
    // Four steps of float rounding on values of order 1: ~1e-7 each, 1e-6 in all.
    EMOTUNE_CHECK_CLOSE(allclose(w, want, 1e-6, 1e-6));
  }
  for (bool decoupled : {false, true}) {
    CAPTURE(decoupled);
    AdamParams p;
    p.lr = 0.01f;
    p.weight_decay = 0.05f;
    p.decoupled = decoupled;
    std::vector<float> w = w0, m(n, 0.0f), v(n, 0.0f);
    std::vector<double> wd(w0.begin(), w0.end()), md(n, 0.0), vd(n, 0.0);
    const double b1 = p.beta1, b2 = p.beta2, eps = p.eps, lr = p.lr, dec = p.weight_decay;
    for (int t = 1; t <= 5; ++t) {
      p.step = t;
      auto g = random_vector(n, 140 + t, -0.1f, 0.1f);
      adam_update_cpu(n, p, w.data(), g.data(), m.data(), v.data());
      for (int i = 0; i < n; ++i) {
        double gi = g[i];
        if (decoupled) wd[i] *= 1 - lr * dec;  // AdamW: decay the weight, not the gradient
        else gi += dec * wd[i];                // Adam: L2 added to the gradient
        md[i] = b1 * md[i] + (1 - b1) * gi;
        vd[i] = b2 * vd[i] + (1 - b2) * gi * gi;
        const double mhat = md[i] / (1 - std::pow(b1, t)), vhat = vd[i] / (1 - std::pow(b2, t));
        wd[i] -= lr * mhat / (std::sqrt(vhat) + eps);
      }
    }
    std::vector<float> want(wd.begin(), wd.end());
    // Each step moves w by about lr = 0.01 with a float relative error ~1e-6 in m^/sqrt(v^)
    // (v is tiny, 1e-5, and carries float rounding): 5 steps * 0.01 * 1e-6 plus the ulp of w.
    EMOTUNE_CHECK_CLOSE(allclose(w, want, 1e-6, 1e-6));
  }
}

TEST_CASE("adam first step moves each weight by lr against the sign of its gradient") {
  AdamParams p;
  p.lr = 0.01f;
  p.step = 1;
  std::vector<float> w = {1.0f, 1.0f}, g = {0.5f, -2.0f}, m(2, 0.0f), v(2, 0.0f);
  adam_update_cpu(2, p, w.data(), g.data(), m.data(), v.data());
  // m^ = g, v^ = g^2 on step 1, so the step is lr * g / (|g| + eps) = lr * sign(g) (eps 1e-7).
  CHECK(std::fabs(w[0] - 0.99) < 1e-6);  // float rounding of 0.99 plus eps/|g| * lr ~ 2e-9
  CHECK(std::fabs(w[1] - 1.01) < 1e-6);
  // m = (1 - beta1) g, v = (1 - beta2) g^2 with the float betas (0.9f is 0.899999976...):
  // a couple of float roundings, 2e-7 relative.
  CHECK(std::fabs(m[0] - (1.0 - (double)0.9f) * 0.5) < 2e-7 * 0.05);
  CHECK(std::fabs(v[1] - (1.0 - (double)0.999f) * 4.0) < 2e-7 * 0.004);
}
