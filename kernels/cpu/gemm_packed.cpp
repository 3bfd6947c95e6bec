#include "kernels/cpu/gemm_packed.h"

#include "kernels/cpu/cpu_features.h"

#include <algorithm>

#if defined(__x86_64__)
#include <immintrin.h>
#define EMOTUNE_GEMM_AVX512 1
#else
#define EMOTUNE_GEMM_AVX512 0
#endif

namespace emotune {

void pack_a(int m, int k, const float* a, int64_t lda, float* ap) {
  for (int r0 = 0; r0 < m; r0 += kPackRows)
    for (int j = 0; j < k; ++j)
      for (int r = 0; r < kPackRows; ++r) *ap++ = r0 + r < m ? a[(int64_t)(r0 + r) * lda + j] : 0.0f;
}

namespace {

// The same blocking in plain C++: 8 rows x 16 columns of C in a local array the compiler keeps
// in vector registers. Clones for AVX2 + FMA and baseline x86-64, picked at load time.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(__SANITIZE_ADDRESS__)
__attribute__((target_clones("arch=haswell", "default")))
#endif
void gemm_portable(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc) {
  constexpr int NR = 16;
  for (int n0 = 0; n0 < n; n0 += NR) {
    const int nn = std::min(NR, n - n0);
    for (int r0 = 0; r0 < m; r0 += kPackRows) {
      float acc[kPackRows][NR] = {};
      const float* a = ap + (int64_t)r0 * k;
      const float* bp = b + n0;
      if (nn == NR) {
        for (int j = 0; j < k; ++j, a += kPackRows, bp += ldb)
          for (int r = 0; r < kPackRows; ++r)
            for (int q = 0; q < NR; ++q) acc[r][q] += a[r] * bp[q];
      } else {
        for (int j = 0; j < k; ++j, a += kPackRows, bp += ldb)
          for (int r = 0; r < kPackRows; ++r)
            for (int q = 0; q < nn; ++q) acc[r][q] += a[r] * bp[q];
      }
      for (int r = 0; r < kPackRows && r0 + r < m; ++r)
        for (int q = 0; q < nn; ++q) c[(int64_t)(r0 + r) * ldc + n0 + q] = acc[r][q];
    }
  }
}

#if EMOTUNE_GEMM_AVX512
// n <= 16 columns: two 8-row panels of A at a time, one register of C per row.
__attribute__((target("avx512f,fma"))) void gemm_avx512_narrow(int m, int n, int k, const float* ap,
                                                               const float* b, int64_t ldb, float* c,
                                                               int64_t ldc) {
  const __mmask16 mask = n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << n) - 1);
  for (int r0 = 0; r0 < m; r0 += 2 * kPackRows) {
    const bool two = r0 + kPackRows < m;
    const float* a = ap + (int64_t)r0 * k;
    const float* a2 = two ? a + (int64_t)kPackRows * k : a;  // the second panel (or the first again)
    __m512 acc[16];
    __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0, c4 = c0, c5 = c0, c6 = c0, c7 = c0, c8 = c0,
           c9 = c0, c10 = c0, c11 = c0, c12 = c0, c13 = c0, c14 = c0, c15 = c0;
    const float* bp = b;
    for (int j = 0; j < k; ++j, a += kPackRows, a2 += kPackRows, bp += ldb) {
      const __m512 bv = _mm512_maskz_loadu_ps(mask, bp);
      c0 = _mm512_fmadd_ps(_mm512_set1_ps(a[0]), bv, c0);
      c1 = _mm512_fmadd_ps(_mm512_set1_ps(a[1]), bv, c1);
      c2 = _mm512_fmadd_ps(_mm512_set1_ps(a[2]), bv, c2);
      c3 = _mm512_fmadd_ps(_mm512_set1_ps(a[3]), bv, c3);
      c4 = _mm512_fmadd_ps(_mm512_set1_ps(a[4]), bv, c4);
      c5 = _mm512_fmadd_ps(_mm512_set1_ps(a[5]), bv, c5);
      c6 = _mm512_fmadd_ps(_mm512_set1_ps(a[6]), bv, c6);
      c7 = _mm512_fmadd_ps(_mm512_set1_ps(a[7]), bv, c7);
      c8 = _mm512_fmadd_ps(_mm512_set1_ps(a2[0]), bv, c8);
      c9 = _mm512_fmadd_ps(_mm512_set1_ps(a2[1]), bv, c9);
      c10 = _mm512_fmadd_ps(_mm512_set1_ps(a2[2]), bv, c10);
      c11 = _mm512_fmadd_ps(_mm512_set1_ps(a2[3]), bv, c11);
      c12 = _mm512_fmadd_ps(_mm512_set1_ps(a2[4]), bv, c12);
      c13 = _mm512_fmadd_ps(_mm512_set1_ps(a2[5]), bv, c13);
      c14 = _mm512_fmadd_ps(_mm512_set1_ps(a2[6]), bv, c14);
      c15 = _mm512_fmadd_ps(_mm512_set1_ps(a2[7]), bv, c15);
    }
    acc[0] = c0, acc[1] = c1, acc[2] = c2, acc[3] = c3, acc[4] = c4, acc[5] = c5, acc[6] = c6, acc[7] = c7;
    acc[8] = c8, acc[9] = c9, acc[10] = c10, acc[11] = c11, acc[12] = c12, acc[13] = c13, acc[14] = c14;
    acc[15] = c15;
    const int rows = std::min(two ? 2 * kPackRows : kPackRows, m - r0);
    for (int r = 0; r < rows; ++r) _mm512_mask_storeu_ps(c + (int64_t)(r0 + r) * ldc, mask, acc[r]);
  }
}

// n <= 4 columns (a late layer's few tiles at batch 1): vectorised along the rows of A instead,
// which its packing already keeps 8 apart: one 8-wide register per (panel, column), four panels
// at a time, so no FMA is spent on padding columns. Missing columns read a zero row.
__attribute__((target("avx512f,fma"))) void gemm_avx512_few(int m, int n, int k, const float* ap,
                                                            const float* b, int64_t ldb, float* c,
                                                            int64_t ldc) {
  static const float zero = 0.0f;
  const float* col[4];
  int64_t step[4];
  for (int t = 0; t < 4; ++t) {
    col[t] = t < n ? b + t : &zero;
    step[t] = t < n ? ldb : 0;
  }
  const int panels = (m + kPackRows - 1) / kPackRows;
  for (int p0 = 0; p0 < panels; p0 += 4) {
    // Panels past the last one re-read the last (their results are not stored).
    const float* a0 = ap + (int64_t)p0 * kPackRows * k;
    const float* a1 = ap + (int64_t)std::min(p0 + 1, panels - 1) * kPackRows * k;
    const float* a2 = ap + (int64_t)std::min(p0 + 2, panels - 1) * kPackRows * k;
    const float* a3 = ap + (int64_t)std::min(p0 + 3, panels - 1) * kPackRows * k;
    __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00, c10 = c00, c11 = c00, c12 = c00,
           c13 = c00, c20 = c00, c21 = c00, c22 = c00, c23 = c00, c30 = c00, c31 = c00, c32 = c00, c33 = c00;
    const float *b0 = col[0], *b1 = col[1], *b2 = col[2], *b3 = col[3];
    for (int j = 0; j < k; ++j) {
      const __m256 x0 = _mm256_set1_ps(*b0), x1 = _mm256_set1_ps(*b1), x2 = _mm256_set1_ps(*b2),
                   x3 = _mm256_set1_ps(*b3);
      b0 += step[0], b1 += step[1], b2 += step[2], b3 += step[3];
#define EMOTUNE_PANEL(q)                                   \
  {                                                        \
    const __m256 av = _mm256_loadu_ps(a##q + j * kPackRows); \
    c##q##0 = _mm256_fmadd_ps(av, x0, c##q##0);            \
    c##q##1 = _mm256_fmadd_ps(av, x1, c##q##1);            \
    c##q##2 = _mm256_fmadd_ps(av, x2, c##q##2);            \
    c##q##3 = _mm256_fmadd_ps(av, x3, c##q##3);            \
  }
      EMOTUNE_PANEL(0) EMOTUNE_PANEL(1) EMOTUNE_PANEL(2) EMOTUNE_PANEL(3)
#undef EMOTUNE_PANEL
    }
    const __m256 out[4][4] = {{c00, c01, c02, c03}, {c10, c11, c12, c13}, {c20, c21, c22, c23}, {c30, c31, c32, c33}};
    for (int q = 0; q < 4 && p0 + q < panels; ++q) {
      alignas(32) float v[4][kPackRows];
      for (int t = 0; t < n; ++t) _mm256_store_ps(v[t], out[q][t]);
      const int r0 = (p0 + q) * kPackRows;
      for (int r = 0; r < kPackRows && r0 + r < m; ++r)
        for (int t = 0; t < n; ++t) c[(int64_t)(r0 + r) * ldc + t] = v[t][r];
    }
  }
}

__attribute__((target("avx512f,fma"))) void gemm_avx512(int m, int n, int k, const float* ap, const float* b,
                                                        int64_t ldb, float* c, int64_t ldc) {
  for (int n0 = 0; n0 < n; n0 += 32) {
    const int nn = std::min(32, n - n0);
    if (nn <= 8) {  // a few last columns: vectorised along A's rows, four columns at a time
      for (int t0 = n0; t0 < n; t0 += 4) gemm_avx512_few(m, std::min(4, n - t0), k, ap, b + t0, ldb, c + t0, ldc);
      break;
    }
    if (nn <= 16) {  // a narrow last panel: 16 rows x 16 columns
      gemm_avx512_narrow(m, nn, k, ap, b + n0, ldb, c + n0, ldc);
      break;
    }
    const __mmask16 m0 = nn >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << nn) - 1);
    const __mmask16 m1 = nn >= 32 ? (__mmask16)0xFFFF : nn > 16 ? (__mmask16)((1u << (nn - 16)) - 1) : (__mmask16)0;
    for (int r0 = 0; r0 < m; r0 += kPackRows) {
      // Sixteen named accumulators: GCC keeps arrays of __m512 on the stack (a store per FMA).
      __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00,
             c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
      const float* a = ap + (int64_t)r0 * k;
      const float* bp = b + n0;
      for (int j = 0; j < k; ++j, a += kPackRows, bp += ldb) {
        const __m512 b0 = _mm512_maskz_loadu_ps(m0, bp);
        const __m512 b1 = _mm512_maskz_loadu_ps(m1, bp + 16);
#define EMOTUNE_ROW(r)                             \
  {                                                \
    const __m512 ar = _mm512_set1_ps(a[r]);        \
    c##r##0 = _mm512_fmadd_ps(ar, b0, c##r##0);    \
    c##r##1 = _mm512_fmadd_ps(ar, b1, c##r##1);    \
  }
        EMOTUNE_ROW(0) EMOTUNE_ROW(1) EMOTUNE_ROW(2) EMOTUNE_ROW(3)
        EMOTUNE_ROW(4) EMOTUNE_ROW(5) EMOTUNE_ROW(6) EMOTUNE_ROW(7)
#undef EMOTUNE_ROW
      }
      const __m512 out0[kPackRows] = {c00, c10, c20, c30, c40, c50, c60, c70};
      const __m512 out1[kPackRows] = {c01, c11, c21, c31, c41, c51, c61, c71};
      const int rows = std::min(kPackRows, m - r0);
      for (int r = 0; r < rows; ++r) {
        float* cr = c + (int64_t)(r0 + r) * ldc + n0;
        _mm512_mask_storeu_ps(cr, m0, out0[r]);
        _mm512_mask_storeu_ps(cr + 16, m1, out1[r]);
      }
    }
  }
}

#endif

}  // namespace

void gemm_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
#if EMOTUNE_GEMM_AVX512
  if (cpu_has_avx512()) return gemm_avx512(m, n, k, ap, b, ldb, c, ldc);
#endif
  gemm_portable(m, n, k, ap, b, ldb, c, ldc);
}

void gemm_packed_a_portable(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c,
                            int64_t ldc) {
  if (m > 0 && n > 0) gemm_portable(m, n, k, ap, b, ldb, c, ldc);
}

const char* gemm_packed_a_path() {
#if EMOTUNE_GEMM_AVX512
  if (cpu_has_avx512()) return "avx512";
#endif
  return "portable";
}

}  // namespace emotune
