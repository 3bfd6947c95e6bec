// gemm_packed_a (kernels/cpu/gemm_packed.h), both paths (AVX-512 where the CPU has it, and the
// portable loops) against a double-precision product, on sizes that hit every edge: rows not a
// multiple of the 8-row panel, column counts around the 16- and 32-wide register blocks, leading
// dimensions wider than the matrices, and k = 0.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "kernels/cpu/gemm_packed.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::random_vector;

namespace {

// |c - exact| <= 4 eps * sum_j |a_ij b_jk|: a length-k float dot product in any order (FMA or not)
// is off by at most k roundings of partial sums bounded by that sum; 4 eps covers it for these k
// with random signs. An element read from the wrong column, row or panel is off by O(|a b|).
void check(int m, int n, int k, int64_t ldb, int64_t ldc, bool portable) {
  auto a = random_vector((size_t)m * k, 1 + m + 7 * n + 13 * k);
  auto b = random_vector((size_t)std::max<int64_t>(1, k * ldb), 2 + m + n + k);
  std::vector<float> ap((size_t)packed_a_size(m, k) + 1, NAN);
  pack_a(m, k, a.data(), k, ap.data());
  std::vector<float> c((size_t)m * ldc, -7.0f);
  if (portable)
    gemm_packed_a_portable(m, n, k, ap.data(), b.data(), ldb, c.data(), ldc);
  else
    gemm_packed_a(m, n, k, ap.data(), b.data(), ldb, c.data(), ldc);
  int bad = 0;
  for (int i = 0; i < m; ++i) {
    for (int j = 0; j < n; ++j) {
      double exact = 0, mag = 0;
      for (int q = 0; q < k; ++q) {
        exact += (double)a[(size_t)i * k + q] * b[(size_t)q * ldb + j];
        mag += std::fabs((double)a[(size_t)i * k + q] * b[(size_t)q * ldb + j]);
      }
      if (!(std::fabs(c[(size_t)i * ldc + j] - exact) <= 4 * kFloatEps * mag + 1e-30)) ++bad;
    }
    for (int64_t j = n; j < ldc; ++j)  // past n: untouched
      if (c[(size_t)i * ldc + j] != -7.0f) ++bad;
  }
  INFO((portable ? "portable" : gemm_packed_a_path()), " m", m, " n", n, " k", k, " ldb", ldb, " ldc", ldc);
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("gemm_packed_a: both paths equal the exact product on every edge size") {
  for (bool portable : {false, true})
    for (int m : {1, 7, 8, 9, 16, 23, 64})
      for (int n : {1, 4, 15, 16, 17, 31, 32, 33, 47, 70})
        for (int k : {0, 1, 5, 64}) check(m, n, k, n + 3, n + 5, portable);
}

TEST_CASE("pack_a: panels of 8 rows, zero past the last row") {
  const int m = 10, k = 3;
  std::vector<float> a(m * k);
  for (int i = 0; i < m * k; ++i) a[i] = (float)(i + 1);
  std::vector<float> ap((size_t)packed_a_size(m, k));
  REQUIRE(ap.size() == 16 * 3);
  pack_a(m, k, a.data(), k, ap.data());
  CHECK(ap[0] == 1.0f);                   // row 0, col 0
  CHECK(ap[1] == 4.0f);                   // row 1, col 0
  CHECK(ap[8] == 2.0f);                   // row 0, col 1
  CHECK(ap[24] == 25.0f);                 // second panel: row 8, col 0
  CHECK(ap[25] == 28.0f);                 // row 9, col 0
  CHECK(ap[26] == 0.0f);                  // row 10 does not exist
  CHECK(ap[24 + 2 * 8 + 7] == 0.0f);      // last padding element
}
