// gemm_bf16 (kernels/cpu/gemm_bf16.h) against a double-precision product of the fp32 operands,
// with the bound derived in the header:
//   |C - exact| <= ((1 + u)^2 - 1) S + gamma_(k+1) (1 + u)^2 S + 2^-24 |beta C0|,  S = sum |a b|
// u = 2^-8 (an operand rounded to bfloat16's 8 significant bits moves by at most 2^-8 of itself),
// gamma_j = j 2^-24 / (1 - j 2^-24) (j fp32 additions of partial sums, plus the block's add to C).
// And a sharper check that the kernel rounds the way it says: against the exact product of the
// operands rounded as float_to_bf16 rounds, only the accumulation's gamma_(k+1) S remains.
// Sizes hit every edge: rows around the 8-row panel and the 16-row tile, columns around the 16/32-wide register
// block and the 256-column block, odd k (a half-empty last pair), k around the 512-value block,
// every transpose, leading dimensions wider than the matrices, beta 0 / 1 / other. Every case runs on
// each kernel the machine has (AMX tiles and vdpbf16ps: the bound is the same, both sum each pair
// of products into fp32 in k order); a kernel the machine lacks is skipped by name.
#include <doctest/doctest.h>

#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "base/error.h"
#include "engine/checkpoint.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_packed.h"
#include "tests/bf16_kernels.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;

namespace {

// The rounding the kernel applies to its operands, as the project already defines it for bf16
// checkpoints (engine/checkpoint.h): to nearest, ties to even, NaN kept a NaN.
float round_to_bf16(float x) { return bf16_to_float(float_to_bf16(x)); }

constexpr double kU = 1.0 / 256;          // bfloat16 rounding, relative
constexpr double kF = 1.0 / 16777216.0;   // fp32 rounding, relative (2^-24)

double gamma(int64_t j) { return j * kF / (1 - j * kF); }

struct Case {
  int m, n, k;
  bool ta, tb;
  float beta;
};

// Returns the number of elements outside the bound (and of elements past n that changed).
int run_case(const Case& t, bool rounded_reference) {
  const int64_t lda = (t.ta ? t.m : t.k) + 3, ldb = (t.tb ? t.k : t.n) + 5, ldc = t.n + 2;
  const int64_t arows = t.ta ? t.k : t.m, brows = t.tb ? t.n : t.k;
  auto a = random_vector((size_t)std::max<int64_t>(1, arows * lda), 11 + t.m + 3 * t.k);
  auto b = random_vector((size_t)std::max<int64_t>(1, brows * ldb), 17 + t.n + 5 * t.k, -2.0f, 2.0f);
  auto c0 = random_vector((size_t)t.m * ldc, 23 + t.m + t.n);
  std::vector<float> c = c0;
  gemm_bf16(t.m, t.n, t.k, a.data(), lda, t.ta, b.data(), ldb, t.tb, t.beta, c.data(), ldc);
  auto A = [&](int i, int q) { return (double)a[t.ta ? (size_t)q * lda + i : (size_t)i * lda + q]; };
  auto B = [&](int q, int j) { return (double)b[t.tb ? (size_t)j * ldb + q : (size_t)q * ldb + j]; };
  int bad = 0;
  for (int i = 0; i < t.m; ++i) {
    for (int j = 0; j < t.n; ++j) {
      double exact = 0, s = 0;
      for (int q = 0; q < t.k; ++q) {
        double x = A(i, q), y = B(q, j);
        if (rounded_reference) x = round_to_bf16((float)x), y = round_to_bf16((float)y);
        exact += x * y;
        s += std::fabs(x * y);
      }
      const double before = t.beta == 0.0f ? 0.0 : (double)t.beta * c0[(size_t)i * ldc + j];
      exact += before;
      const double product_rounding = rounded_reference ? 0.0 : ((1 + kU) * (1 + kU) - 1) * s;
      const double bound = product_rounding + gamma(t.k + 1) * (1 + kU) * (1 + kU) * s + kF * std::fabs(before) +
                           1e-37;  // values below 2^-126 may be flushed
      const double got = c[(size_t)i * ldc + j];
      if (!(std::fabs(got - exact) <= bound)) {
        if (bad < 3)
          MESSAGE("m", t.m, " n", t.n, " k", t.k, " ta", t.ta, " tb", t.tb, " beta", t.beta, " at (", i, ",", j,
                  "): got ", got, " want ", exact, " bound ", bound);
        ++bad;
      }
    }
    for (int64_t j = t.n; j < ldc; ++j)
      if (c[(size_t)i * ldc + j] != c0[(size_t)i * ldc + j]) ++bad;
  }
  return bad;
}

// Each kernel this machine can run in turn (tests/bf16_kernels.h).
template <class F>
void for_each_kernel(const char* what, F&& body) {
  testing::for_each_bf16_kernel(what, body);
}

}  // namespace

TEST_CASE("round_to_bf16: nearest, ties to even, specials kept") {
  CHECK(round_to_bf16(1.0f) == 1.0f);
  CHECK(round_to_bf16(1.0f + 0x1p-8f) == 1.0f);                       // a tie: down to the even 1.0
  CHECK(round_to_bf16(1.0f + 3 * 0x1p-8f) == 1.0f + 0x1p-6f);         // a tie: up to the even neighbour
  CHECK(round_to_bf16(1.0f + 0x1p-8f + 0x1p-20f) == 1.0f + 0x1p-7f);  // past the tie: up
  CHECK(round_to_bf16(-3.0f) == -3.0f);
  CHECK(std::isinf(round_to_bf16(std::numeric_limits<float>::infinity())));
  CHECK(std::isnan(round_to_bf16(std::numeric_limits<float>::quiet_NaN())));
  float nan_low;  // a NaN whose payload lies only in the bits rounding drops stays a NaN
  const uint32_t bits = 0x7F800001u;
  std::memcpy(&nan_low, &bits, 4);
  CHECK(std::isnan(round_to_bf16(nan_low)));
  auto v = random_vector(10000, 5, -100.0f, 100.0f);
  double worst = 0;
  for (float x : v)
    if (x != 0.0f) worst = std::max(worst, std::fabs((double)round_to_bf16(x) - x) / std::fabs((double)x));
  CHECK(worst <= kU);
}

TEST_CASE("gemm_bf16: within the derived bound on every edge size and transpose") {
  for_each_kernel("gemm_bf16 products", [&] {
    int bad = 0, cases = 0;
    for (bool ta : {false, true})
      for (bool tb : {false, true})
        for (int m : {1, 7, 8, 9, 16, 17, 23, 33, 64})  // 8-row panels, 16-row tiles, 32-row AMX block
          for (int n : {1, 15, 16, 17, 33, 70})
            for (int k : {0, 1, 2, 3, 31, 33, 64}) {  // pairs, 16-pair (32-value) tiles
              const float beta = (m + n + k) % 3 == 0 ? 0.0f : (m + n + k) % 3 == 1 ? 1.0f : -0.5f;
              bad += run_case({m, n, k, ta, tb, beta}, false);
              ++cases;
            }
    INFO(cases, " cases");
    CHECK(bad == 0);
  });
}

TEST_CASE("gemm_bf16: the blocks (257+ columns, 512+ values of k, 192+ rows) and the layers' shapes") {
  for_each_kernel("gemm_bf16 blocked products", [&] {
    int bad = 0;
    for (const Case& t : {Case{200, 300, 600, false, false, 0.0f}, Case{200, 300, 1025, true, true, 1.0f},
                          Case{64, 576, 1152, false, false, 0.0f},   // paper conv3-like forward (im2col)
                          Case{576, 121, 128, true, false, 0.0f},    // backward-input W^T dY
                          Case{128, 1152, 2000, false, true, 0.0f},  // backward-weight dY col^T
                          Case{16, 1024, 4608, false, true, 1.0f},   // dense forward x W^T
                          Case{7, 16, 1024, false, false, 0.0f}})
      bad += run_case(t, false);
    CHECK(bad == 0);
  });
}

TEST_CASE("gemm_bf16: rounds its operands to nearest even, nothing more") {
  for_each_kernel("gemm_bf16 rounding", [&] {
    int bad = 0;
    for (bool ta : {false, true})
      for (bool tb : {false, true}) bad += run_case({19, 45, 77, ta, tb, 0.0f}, true);
    CHECK(bad == 0);
  });
}

TEST_CASE("gemm_bf16_packed_a equals gemm_bf16 on the same A, bit for bit") {
  for_each_kernel("gemm_bf16_packed_a", [&] {
    for (int m : {5, 8, 24, 200})
      for (int n : {3, 40, 300})
        for (int k : {1, 9, 600}) {
          auto a = random_vector((size_t)m * k, 3 + m);
          auto b = random_vector((size_t)k * n, 4 + n);
          std::vector<float> ap((size_t)packed_a_size(m, k));
          pack_a(m, k, a.data(), k, ap.data());
          std::vector<float> c1((size_t)m * n), c2((size_t)m * n);
          gemm_bf16(m, n, k, a.data(), k, false, b.data(), n, false, 0.0f, c1.data(), n);
          gemm_bf16_packed_a(m, n, k, ap.data(), b.data(), n, c2.data(), n);
          INFO("m", m, " n", n, " k", k);
          CHECK(c1 == c2);
        }
  });
}

TEST_CASE("gemm_bf16_prepared_a equals gemm_bf16_packed_a, bit for bit, on every block edge") {
  for_each_kernel("gemm_bf16_prepared_a", [&] {
    for (int m : {5, 24, 33, 200, 400})  // 192-row blocks, 16-row tiles
      for (int n : {3, 300})
        for (int k : {16, 33, 600, 1100}) {  // 512-value blocks, 32-value tiles
          auto a = random_vector((size_t)m * k, 13 + m);
          auto b = random_vector((size_t)k * n, 14 + n);
          std::vector<float> ap((size_t)packed_a_size(m, k));
          pack_a(m, k, a.data(), k, ap.data());
          const Bf16PackedA prepared = gemm_bf16_prepare_a(m, k, ap.data());
          CHECK(prepared.kernel == gemm_bf16_kernel());
          std::vector<float> c1((size_t)m * n), c2((size_t)m * n, NAN);
          gemm_bf16_packed_a(m, n, k, ap.data(), b.data(), n, c1.data(), n);
          gemm_bf16_prepared_a(prepared, n, b.data(), n, c2.data(), n);
          INFO("m", m, " n", n, " k", k);
          CHECK(c1 == c2);
        }
  });
}

TEST_CASE("gemm_bf16_prepared_a refuses A prepared for another kernel") {
  std::string why;
  if (!testing::isa_or_skip(gemm_bf16_amx_available(&why), "amx_bf16", "two bf16 kernels to switch between")) return;
  const Bf16Kernel saved = gemm_bf16_kernel();
  std::vector<float> ap((size_t)packed_a_size(8, 32), 1.0f), b(32 * 4, 1.0f), c(8 * 4);
  set_gemm_bf16_kernel(Bf16Kernel::amx);
  const Bf16PackedA prepared = gemm_bf16_prepare_a(8, 32, ap.data());
  set_gemm_bf16_kernel(Bf16Kernel::avx512_bf16);
  CHECK_THROWS_WITH_AS(gemm_bf16_prepared_a(prepared, 4, b.data(), 4, c.data(), 4),
                       doctest::Contains("prepared for the amx kernel"), Error);
  set_gemm_bf16_kernel(saved);
}

TEST_CASE("gemm_bf16: the same result on 1 and 2 threads") {
  for_each_kernel("gemm_bf16 threads", [&] {
    const int m = 96, n = 1000, k = 700;
    auto a = random_vector((size_t)m * k, 8), b = random_vector((size_t)k * n, 9);
    std::vector<float> c1((size_t)m * n), c2((size_t)m * n);
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    gemm_bf16(m, n, k, a.data(), k, false, b.data(), n, false, 0.0f, c1.data(), n);
    omp_set_num_threads(2);
    gemm_bf16(m, n, k, a.data(), k, false, b.data(), n, false, 0.0f, c2.data(), n);
    omp_set_num_threads(saved);
    CHECK(c1 == c2);
  });
}
