// BF16 GEMM on AVX512-BF16 (contract and error bound in kernels/cpu/gemm_bf16.h).
//
// Packing turns fp32 operands into panels of 32-bit bf16 pairs, the form vdpbf16ps reads: pair q
// of lane i holds (x[i][2q], x[i][2q+1]) along the reduction. Two source shapes occur:
//   lanes contiguous (B [k, n] row-major, A^T, Winograd's fp32 panels): rows 2q and 2q+1 are
//     loaded 16 lanes at a time, rounded (vcvtneps2bf16) and interleaved by widening to 32 bits;
//   k contiguous (A [m, k] row-major, B^T): 16 lanes x 32 values are rounded in place
//     (vcvtne2ps2bf16 keeps neighbours together, so each 32-bit element already is a pair) and
//     the 16 x 16 block of pairs is transposed in registers.
// The micro-kernel holds an 8 x 32 block of C in 16 accumulators: per pair of k, two loads of B,
// eight broadcasts of A and sixteen vdpbf16ps (32 multiply-adds each).
#include "kernels/cpu/gemm_bf16.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_packed.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define EMOTUNE_BF16_X86 1
#else
#define EMOTUNE_BF16_X86 0
#endif

namespace emotune {

bool gemm_bf16_available() {
  static const bool yes = [] {
    const CpuFeatures f = cpu_features_detect();
    return f.best() == CpuIsa::avx512 && f.avx512_bf16;
  }();
  return yes;
}

#if EMOTUNE_BF16_X86
namespace {

#define EMOTUNE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

constexpr int kMr = 8;          // rows of an A panel and of the C block
constexpr int kNr = 32;         // columns of a B panel and of the C block
constexpr int kKcPairs = 256;   // pairs of k per block: a B panel is 32 KB, an A panel 8 KB
constexpr int kNc = 256;        // columns per block of B (256 KB packed): one thread's unit
constexpr int kMc = 192;        // rows per block of A (192 KB packed)

// A source matrix as the packer sees it: element (lane i, reduction index kk) at
// p[i * lane_stride + kk * k_stride]; one of the two strides is 1.
struct Src {
  const float* p;
  int64_t lane_stride, k_stride;
};

inline __mmask16 lanes_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << std::max(n, 0)) - 1); }

// Lanes contiguous: out[q * width + i] = pair(x(i, k0 + 2q), x(i, k0 + 2q + 1)), k0 + 2q + 1 < k1
// else zero in the missing half; lanes past `lanes` zero. width is 8 or 32.
EMOTUNE_BF16_TARGET void pack_lanes_contiguous(const Src& s, int lanes, int width, int64_t k0, int64_t k1,
                                               uint32_t* out) {
  const int64_t pairs = (k1 - k0 + 1) / 2;
  for (int l0 = 0; l0 < width; l0 += 16) {
    const __mmask16 m = lanes_mask(lanes - l0);
    const __mmask16 store = width - l0 >= 16 ? (__mmask16)0xFFFF : lanes_mask(width - l0);
    for (int64_t q = 0; q < pairs; ++q) {
      const int64_t kk = k0 + 2 * q;
      const float* r0 = s.p + kk * s.k_stride + l0;
      const __m512 x0 = _mm512_maskz_loadu_ps(m, r0);
      const __m512 x1 = kk + 1 < k1 ? _mm512_maskz_loadu_ps(m, r0 + s.k_stride) : _mm512_setzero_ps();
      const __m512i lo = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x0));
      const __m512i hi = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(x1));
      _mm512_mask_storeu_epi32(out + q * width + l0, store, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
    }
  }
}

// 16 x 16 transpose of 32-bit elements: r[i] holds row i on entry and column i on return.
EMOTUNE_BF16_TARGET inline void transpose16(__m512i r[16]) {
  __m512i a[16], b[16];
  for (int i = 0; i < 8; ++i) {
    a[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
    a[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
  }
  for (int i = 0; i < 4; ++i) {  // b[4i + j], 128-bit lane L: column 4L + j of rows 4i .. 4i+3
    b[4 * i + 0] = _mm512_unpacklo_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 1] = _mm512_unpackhi_epi64(a[4 * i], a[4 * i + 2]);
    b[4 * i + 2] = _mm512_unpacklo_epi64(a[4 * i + 1], a[4 * i + 3]);
    b[4 * i + 3] = _mm512_unpackhi_epi64(a[4 * i + 1], a[4 * i + 3]);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i c0 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0x88);       // lanes 0, 2 of rows 0-3, 4-7
    const __m512i c1 = _mm512_shuffle_i32x4(b[j], b[4 + j], 0xDD);       // lanes 1, 3
    const __m512i c2 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0x88);  // the same of rows 8-15
    const __m512i c3 = _mm512_shuffle_i32x4(b[8 + j], b[12 + j], 0xDD);
    r[j] = _mm512_shuffle_i32x4(c0, c2, 0x88);
    r[8 + j] = _mm512_shuffle_i32x4(c0, c2, 0xDD);
    r[4 + j] = _mm512_shuffle_i32x4(c1, c3, 0x88);
    r[12 + j] = _mm512_shuffle_i32x4(c1, c3, 0xDD);
  }
}

// k contiguous: the same output from rows of 32 values along k per lane.
EMOTUNE_BF16_TARGET void pack_k_contiguous(const Src& s, int lanes, int width, int64_t k0, int64_t k1,
                                           uint32_t* out) {
  const int64_t pairs = (k1 - k0 + 1) / 2;
  for (int l0 = 0; l0 < width; l0 += 16) {
    const int nl = std::min(16, width - l0);
    for (int64_t q0 = 0; q0 < pairs; q0 += 16) {
      const int64_t kk = k0 + 2 * q0;
      const int64_t left = k1 - kk;  // values of k left in this block, > 0
      const __mmask16 m0 = lanes_mask((int)std::min<int64_t>(left, 16));
      const __mmask16 m1 = lanes_mask((int)std::min<int64_t>(std::max<int64_t>(left - 16, 0), 16));
      __m512i r[16];
      for (int i = 0; i < 16; ++i) {
        if (l0 + i >= lanes) {
          r[i] = _mm512_setzero_si512();
          continue;
        }
        const float* row = s.p + (int64_t)(l0 + i) * s.lane_stride + kk;
        const __m512 lo = _mm512_maskz_loadu_ps(m0, row);
        const __m512 hi = _mm512_maskz_loadu_ps(m1, row + 16);
        r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // element j: the pair (row[2j], row[2j + 1])
      }
      transpose16(r);  // r[j]: pair q0 + j of the 16 lanes
      const int qn = (int)std::min<int64_t>(16, pairs - q0);
      const __mmask16 store = lanes_mask(nl);
      for (int j = 0; j < qn; ++j) _mm512_mask_storeu_epi32(out + (q0 + j) * width + l0, store, r[j]);
    }
  }
}

void pack(const Src& s, int lanes, int width, int64_t k0, int64_t k1, uint32_t* out) {
  if (s.lane_stride == 1)
    pack_lanes_contiguous(s, lanes, width, k0, k1, out);
  else
    pack_k_contiguous(s, lanes, width, k0, k1, out);
}

// C block (rows x cols of at most 8 x 32) from a [pairs][8] A panel and a [pairs][32] B panel.
// mode 0: C = acc; 1: C += acc; 2: C = beta * C + acc.
EMOTUNE_BF16_TARGET void micro_kernel(int64_t pairs, const uint32_t* ap, const uint32_t* bp, float* c, int64_t ldc,
                                      int rows, int cols, int mode, float beta) {
  __m512 c00 = _mm512_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00,
         c40 = c00, c41 = c00, c50 = c00, c51 = c00, c60 = c00, c61 = c00, c70 = c00, c71 = c00;
  for (int64_t q = 0; q < pairs; ++q, ap += kMr, bp += kNr) {
    const __m512bh b0 = (__m512bh)_mm512_loadu_si512(bp);
    const __m512bh b1 = (__m512bh)_mm512_loadu_si512(bp + 16);
#define EMOTUNE_ROW(r)                                                   \
  {                                                                      \
    const __m512bh ar = (__m512bh)_mm512_set1_epi32((int)ap[r]);         \
    c##r##0 = _mm512_dpbf16_ps(c##r##0, ar, b0);                         \
    c##r##1 = _mm512_dpbf16_ps(c##r##1, ar, b1);                         \
  }
    EMOTUNE_ROW(0) EMOTUNE_ROW(1) EMOTUNE_ROW(2) EMOTUNE_ROW(3)
    EMOTUNE_ROW(4) EMOTUNE_ROW(5) EMOTUNE_ROW(6) EMOTUNE_ROW(7)
#undef EMOTUNE_ROW
  }
  const __m512 out0[kMr] = {c00, c10, c20, c30, c40, c50, c60, c70};
  const __m512 out1[kMr] = {c01, c11, c21, c31, c41, c51, c61, c71};
  const __mmask16 m0 = lanes_mask(cols), m1 = lanes_mask(cols - 16);
  const __m512 vb = _mm512_set1_ps(beta);
  for (int r = 0; r < rows; ++r) {
    float* cr = c + (int64_t)r * ldc;
    __m512 v0 = out0[r], v1 = out1[r];
    if (mode == 1) {
      v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
      v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
    } else if (mode == 2) {
      v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
      v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
    }
    _mm512_mask_storeu_ps(cr, m0, v0);
    _mm512_mask_storeu_ps(cr + 16, m1, v1);
  }
}

// Per-thread packing buffers, kept between calls.
uint32_t* pack_buffer(int slot, size_t n) {
  thread_local std::vector<uint32_t> buf[2];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// How A is given: a Src, or gemm_packed_a's fp32 panels (each panel of 8 rows is lanes
// contiguous with a k stride of 8).
struct ASource {
  Src src{};
  const float* panels = nullptr;  // non-null: packed fp32 panels of k values each
  int64_t k = 0;
};

void pack_a_block(const ASource& a, int m, int i0, int mc, int64_t k0, int64_t k1, uint32_t* out) {
  const int64_t pairs = (k1 - k0 + 1) / 2;
  for (int p = 0; p < mc; p += kMr) {
    const int rows = std::min(kMr, m - (i0 + p));
    uint32_t* dst = out + (int64_t)p * pairs;
    if (a.panels) {  // i0 + p is a multiple of 8: one fp32 panel
      const Src s{a.panels + (int64_t)(i0 + p) * a.k, 1, kMr};
      pack_lanes_contiguous(s, kMr, kMr, k0, k1, dst);
    } else {
      const Src s{a.src.p + (int64_t)(i0 + p) * a.src.lane_stride, a.src.lane_stride, a.src.k_stride};
      pack(s, rows, kMr, k0, k1, dst);
    }
  }
}

// One block of kNc columns [j0, j0 + nc): all of k, all of m.
void column_block(int m, int64_t k, const ASource& a, const Src& b, int j0, int nc, float beta, float* c, int64_t ldc) {
  const int bpanels = (nc + kNr - 1) / kNr;
  uint32_t* bp = pack_buffer(0, (size_t)bpanels * kKcPairs * kNr);
  uint32_t* ap = pack_buffer(1, (size_t)((std::min(kMc, m) + kMr - 1) / kMr) * kKcPairs * kMr);
  for (int64_t k0 = 0; k0 < k; k0 += 2 * kKcPairs) {
    const int64_t k1 = std::min<int64_t>(k, k0 + 2 * kKcPairs), pairs = (k1 - k0 + 1) / 2;
    for (int jp = 0; jp < bpanels; ++jp) {
      const int j = j0 + jp * kNr;
      const Src s{b.p + (int64_t)j * b.lane_stride, b.lane_stride, b.k_stride};
      pack(s, std::min(kNr, j0 + nc - j), kNr, k0, k1, bp + (int64_t)jp * pairs * kNr);
    }
    const int mode = k0 > 0 ? 1 : beta == 0.0f ? 0 : 2;
    for (int i0 = 0; i0 < m; i0 += kMc) {
      const int mc = std::min(kMc, m - i0);
      pack_a_block(a, m, i0, mc, k0, k1, ap);
      for (int jp = 0; jp < bpanels; ++jp) {
        const int j = j0 + jp * kNr, cols = std::min(kNr, j0 + nc - j);
        for (int p = 0; p < mc; p += kMr)
          micro_kernel(pairs, ap + (int64_t)p * pairs, bp + (int64_t)jp * pairs * kNr, c + (int64_t)(i0 + p) * ldc + j,
                       ldc, std::min(kMr, mc - p), cols, mode, beta);
      }
    }
  }
}

void run(int m, int n, int64_t k, const ASource& a, const Src& b, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta * C
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) c[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(int64_t)i * ldc + j];
    return;
  }
  const int blocks = (n + kNc - 1) / kNc;
  // Below ~4 M multiply-adds (~50 us of one core at this rate) a team costs more than it saves.
  const bool team = !omp_in_parallel() && blocks > 1 && (double)m * n * k >= 4e6;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (int blk = 0; blk < blocks; ++blk) {
    const int j0 = blk * kNc;
    column_block(m, k, a, b, j0, std::min(kNc, n - j0), beta, c, ldc);
  }
}

}  // namespace
#endif

void gemm_bf16(int m, int n, int k, const float* a, int64_t lda, bool trans_a, const float* b, int64_t ldb,
               bool trans_b, float beta, float* c, int64_t ldc) {
  if (!gemm_bf16_available()) throw Error("gemm_bf16: this CPU has no AVX512-BF16 (precision bf16 needs it)");
#if EMOTUNE_BF16_X86
  ASource as;
  as.src = trans_a ? Src{a, 1, lda} : Src{a, lda, 1};
  const Src bs = trans_b ? Src{b, ldb, 1} : Src{b, 1, ldb};
  run(m, n, k, as, bs, beta, c, ldc);
#else
  (void)m, (void)n, (void)k, (void)a, (void)lda, (void)trans_a, (void)b, (void)ldb, (void)trans_b, (void)beta,
      (void)c, (void)ldc;
#endif
}

void gemm_bf16_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (!gemm_bf16_available()) throw Error("gemm_bf16: this CPU has no AVX512-BF16 (precision bf16 needs it)");
#if EMOTUNE_BF16_X86
  static_assert(kMr == kPackRows && kMc % kPackRows == 0, "A blocks must start on gemm_packed_a's panels");
  ASource as;
  as.panels = ap;
  as.k = k;
  run(m, n, k, as, Src{b, 1, ldb}, 0.0f, c, ldc);
#else
  (void)m, (void)n, (void)k, (void)ap, (void)b, (void)ldb, (void)c, (void)ldc;
#endif
}

}  // namespace emotune
