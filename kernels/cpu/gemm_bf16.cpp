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
//
// AMX: the same B panels are what TDPBF16PS reads as its second operand (row q of a tile: pair q
// of 16 columns), loaded as tiles with a 128-byte stride; A's panels are turned into 16 x 16 blocks
// of pairs (a register transpose); the micro-kernel keeps a 32 x 32 block of C in tiles 0-3, with
// A in tiles 4-5 and B in tiles 6-7, loaded from and stored to C itself for whole blocks (through
// a small buffer at the edges). k is padded to whole tiles (16 pairs) with zeros in the packing.
#include "kernels/cpu/gemm_bf16.h"

#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/cpu/amx.h"
#include "kernels/cpu/bf16_simd.h"
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

const char* bf16_kernel_name(Bf16Kernel k) {
  switch (k) {
    case Bf16Kernel::amx: return "amx";
    case Bf16Kernel::avx512_bf16: return "avx512-bf16";
    default: return "none";
  }
}

Bf16Kernel bf16_kernel_from_name(const std::string& name) {
  if (name == "amx") return Bf16Kernel::amx;
  if (name == "avx512-bf16") return Bf16Kernel::avx512_bf16;
  throw Error("bf16 kernel '" + name + "': amx or avx512-bf16");
}

bool gemm_bf16_amx_available(std::string* why_not) {
  struct Answer {
    bool ok;
    std::string why;
  };
  static const Answer answer = []() -> Answer {
    const CpuFeatures f = cpu_features_detect();
    if (!gemm_bf16_available()) return {false, "no AVX512-BF16 (the packing uses it)"};
    if (!f.amx_tile || !f.amx_bf16) return {false, "the CPU has no AMX-BF16"};
    if (!f.os_amx) return {false, "the OS does not enable the AMX tile state (XCR0)"};
#if EMOTUNE_BF16_X86 && defined(SYS_arch_prctl)
    constexpr int kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;  // linux/arch/x86/include/uapi/asm/prctl.h
    if (syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) != 0)
      return {false, std::string("Linux refused the AMX tile state (arch_prctl: ") + std::strerror(errno) + ")"};
    return {true, ""};
#else
    return {false, "not an x86-64 Linux build"};
#endif
  }();
  if (!answer.ok && why_not) *why_not = answer.why;
  return answer.ok;
}

namespace {
std::atomic<int> g_kernel{-1};  // -1: not chosen yet
}

Bf16Kernel gemm_bf16_kernel() {
  int k = g_kernel.load(std::memory_order_relaxed);
  if (k < 0) {
    const Bf16Kernel best = gemm_bf16_amx_available() ? Bf16Kernel::amx
                            : gemm_bf16_available()   ? Bf16Kernel::avx512_bf16
                                                      : Bf16Kernel::none;
    int expected = -1;
    g_kernel.compare_exchange_strong(expected, (int)best);
    k = g_kernel.load(std::memory_order_relaxed);
  }
  return (Bf16Kernel)k;
}

void set_gemm_bf16_kernel(Bf16Kernel k) {
  std::string why;
  if (k == Bf16Kernel::amx && !gemm_bf16_amx_available(&why)) throw Error("bf16 kernel amx: " + why);
  if (k == Bf16Kernel::avx512_bf16 && !gemm_bf16_available())
    throw Error("bf16 kernel avx512-bf16: this CPU has no AVX512-BF16");
  g_kernel.store((int)k, std::memory_order_relaxed);
}

#if EMOTUNE_BF16_X86
namespace {

using bf16::lanes_mask;

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
      _mm512_mask_storeu_epi32(out + q * width + l0, store, bf16::pairs(x0, x1));
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

// One row of a C block (up to 32 columns, masks m0 / m1 for the two halves) from its accumulators.
// mode 0: C = acc; 1: C += acc; 2: C = beta * C + acc.
EMOTUNE_BF16_TARGET inline void store_row(float* cr, __m512 v0, __m512 v1, __mmask16 m0, __mmask16 m1, int mode,
                                          float beta) {
  if (mode == 1) {
    v0 = _mm512_add_ps(v0, _mm512_maskz_loadu_ps(m0, cr));
    v1 = _mm512_add_ps(v1, _mm512_maskz_loadu_ps(m1, cr + 16));
  } else if (mode == 2) {
    const __m512 vb = _mm512_set1_ps(beta);
    v0 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m0, cr), v0);
    v1 = _mm512_fmadd_ps(vb, _mm512_maskz_loadu_ps(m1, cr + 16), v1);
  }
  _mm512_mask_storeu_ps(cr, m0, v0);
  _mm512_mask_storeu_ps(cr + 16, m1, v1);
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
  for (int r = 0; r < rows; ++r) store_row(c + (int64_t)r * ldc, out0[r], out1[r], m0, m1, mode, beta);
}

// Per-thread packing buffers, kept between calls.
uint32_t* pack_buffer(int slot, size_t n) {
  thread_local std::vector<uint32_t> buf[3];
  if (buf[slot].size() < n) buf[slot].resize(n);
  return buf[slot].data();
}

// How A is given: a Src, or gemm_packed_a's fp32 panels (each panel of 8 rows is lanes
// contiguous with a k stride of 8).
struct ASource {
  Src src{};
  const float* panels = nullptr;  // non-null: packed fp32 panels of k values each
  int64_t k = 0;
  const Bf16PackedA* prepared = nullptr;  // non-null: every block already in the kernel's layout

  // The prepared block (k0, i0), or null when A is to be packed now.
  const uint32_t* block(int64_t k0, int i0) const {
    if (!prepared) return nullptr;
    const int iblocks = (prepared->m + kMc - 1) / kMc;
    return prepared->data.data() + prepared->offsets[(size_t)(k0 / (2 * kKcPairs) * iblocks + i0 / kMc)];
  }
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
      const uint32_t* apb = a.block(k0, i0);
      if (!apb) pack_a_block(a, m, i0, mc, k0, k1, ap), apb = ap;
      for (int jp = 0; jp < bpanels; ++jp) {
        const int j = j0 + jp * kNr, cols = std::min(kNr, j0 + nc - j);
        for (int p = 0; p < mc; p += kMr)
          micro_kernel(pairs, apb + (int64_t)p * pairs, bp + (int64_t)jp * pairs * kNr, c + (int64_t)(i0 + p) * ldc + j,
                       ldc, std::min(kMr, mc - p), cols, mode, beta);
      }
    }
  }
}

// ---- AMX ----

constexpr int kTilePairs = 16;  // pairs of k in one tile row (64 bytes), and rows of a tile


// out [32][32] fp32 (row stride ld) = (accumulate ? out : 0) + A (MA tiles of 16 rows) x B (NB tiles
// of 16 columns) over `chunks` tiles of 16 pairs. a0 / a1: [chunks][16 rows][16 pairs]; bp: a
// [pairs][32] panel. `out` is C itself for whole 32 x 32 blocks, else a buffer amx_store adds in.
template <int MA, int NB>
EMOTUNE_AMX_TARGET void amx_kernel(int chunks, const uint32_t* a0, const uint32_t* a1, const uint32_t* bp,
                                   float* out, int64_t ld, bool accumulate) {
  asm volatile("" ::: "memory");  // tileloadd's asm names no memory: the packing must be done
  const int64_t stride = ld * 4;
  if (accumulate) {
    _tile_loadd(0, out, stride);
    if (NB > 1) _tile_loadd(1, out + 16, stride);
    if (MA > 1) _tile_loadd(2, out + 16 * ld, stride);
    if (MA > 1 && NB > 1) _tile_loadd(3, out + 16 * ld + 16, stride);
  } else {
    _tile_zero(0);
    if (NB > 1) _tile_zero(1);
    if (MA > 1) _tile_zero(2);
    if (MA > 1 && NB > 1) _tile_zero(3);
  }
  for (int q = 0; q < chunks; ++q) {
    const uint32_t* b = bp + (int64_t)q * kTilePairs * kNr;
    _tile_loadd(4, a0 + q * 256, 64);
    _tile_loadd(6, b, kNr * 4);
    if (NB > 1) _tile_loadd(7, b + 16, kNr * 4);
    _tile_dpbf16ps(0, 4, 6);
    if (NB > 1) _tile_dpbf16ps(1, 4, 7);
    if (MA > 1) {
      _tile_loadd(5, a1 + q * 256, 64);
      _tile_dpbf16ps(2, 5, 6);
      if (NB > 1) _tile_dpbf16ps(3, 5, 7);
    }
  }
  _tile_stored(0, out, stride);
  if (NB > 1) _tile_stored(1, out + 16, stride);
  if (MA > 1) _tile_stored(2, out + 16 * ld, stride);
  if (MA > 1 && NB > 1) _tile_stored(3, out + 16 * ld + 16, stride);
}

// A block packed as [8-row panels][pairs][8] -> [16-row groups][chunks][16 rows][16 pairs], pairs
// past `pairs` and rows past the panels zero.
EMOTUNE_BF16_TARGET void amx_layout_a(const uint32_t* ap, int mc, int64_t pairs, int chunks, uint32_t* at) {
  const int panels = (mc + kMr - 1) / kMr, groups = (mc + 15) / 16;
  for (int g = 0; g < groups; ++g) {
    const uint32_t* p0 = ap + (int64_t)(2 * g) * pairs * kMr;
    const uint32_t* p1 = 2 * g + 1 < panels ? ap + (int64_t)(2 * g + 1) * pairs * kMr : nullptr;
    for (int q0 = 0; q0 < chunks; ++q0) {
      __m512i r[16];
      for (int j = 0; j < 16; ++j) {
        const int64_t q = (int64_t)q0 * kTilePairs + j;
        if (q >= pairs) {
          r[j] = _mm512_setzero_si512();
          continue;
        }
        const __m256i lo = _mm256_loadu_si256((const __m256i*)(p0 + q * kMr));
        const __m256i hi = p1 ? _mm256_loadu_si256((const __m256i*)(p1 + q * kMr)) : _mm256_setzero_si256();
        r[j] = _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);  // pair q of rows 0-15
      }
      transpose16(r);  // r[i]: pairs q0*16 .. q0*16+15 of row i
      uint32_t* dst = at + ((int64_t)g * chunks + q0) * 256;
      for (int i = 0; i < 16; ++i) _mm512_storeu_si512(dst + i * 16, r[i]);
    }
  }
}

EMOTUNE_BF16_TARGET void amx_store(const float* acc, float* c, int64_t ldc, int rows, int cols, int mode,
                                   float beta) {
  const __mmask16 m0 = lanes_mask(cols), m1 = lanes_mask(cols - 16);
  for (int r = 0; r < rows; ++r)
    store_row(c + (int64_t)r * ldc, _mm512_loadu_ps(acc + r * 32), _mm512_loadu_ps(acc + r * 32 + 16), m0, m1, mode,
              beta);
}

// column_block's AMX form: the same blocks and packing, tiles for the products.
void column_block_amx(int m, int64_t k, const ASource& a, const Src& b, int j0, int nc, float beta, float* c,
                      int64_t ldc) {
  static_assert(kKcPairs % kTilePairs == 0 && kMc % 32 == 0, "blocks hold whole tiles");
  const int bpanels = (nc + kNr - 1) / kNr, mcmax = std::min(kMc, m);
  uint32_t* bp = pack_buffer(0, (size_t)bpanels * kKcPairs * kNr);
  uint32_t* ap = pack_buffer(1, (size_t)((mcmax + kMr - 1) / kMr) * kKcPairs * kMr);
  uint32_t* at = pack_buffer(2, (size_t)((mcmax + 15) / 16) * kKcPairs * 16);
  alignas(64) float acc[32 * 32];
  amx::configure();
  for (int64_t k0 = 0; k0 < k; k0 += 2 * kKcPairs) {
    const int64_t k1 = std::min<int64_t>(k, k0 + 2 * kKcPairs), pairs = (k1 - k0 + 1) / 2;
    const int chunks = (int)((pairs + kTilePairs - 1) / kTilePairs);
    const int64_t padded = (int64_t)chunks * kTilePairs, panel = padded * kNr;
    for (int jp = 0; jp < bpanels; ++jp) {
      const int j = j0 + jp * kNr;
      const Src s{b.p + (int64_t)j * b.lane_stride, b.lane_stride, b.k_stride};
      pack(s, std::min(kNr, j0 + nc - j), kNr, k0, k1, bp + jp * panel);
      std::memset(bp + jp * panel + pairs * kNr, 0, (size_t)(padded - pairs) * kNr * 4);
    }
    const int mode = k0 > 0 ? 1 : beta == 0.0f ? 0 : 2;
    for (int i0 = 0; i0 < m; i0 += kMc) {
      const int mc = std::min(kMc, m - i0), groups = (mc + 15) / 16;
      const uint32_t* atb = a.block(k0, i0);
      if (!atb) {
        pack_a_block(a, m, i0, mc, k0, k1, ap);
        amx_layout_a(ap, mc, pairs, chunks, at);
        atb = at;
      }
      for (int jp = 0; jp < bpanels; ++jp) {
        const int j = j0 + jp * kNr, cols = std::min(kNr, j0 + nc - j);
        for (int g = 0; g < groups; g += 2) {
          const uint32_t* a0 = atb + (int64_t)g * chunks * 256;
          const uint32_t* a1 = a0 + (int64_t)chunks * 256;
          const bool two_a = g + 1 < groups, two_b = cols > 16;
          float* cb = c + (int64_t)(i0 + g * 16) * ldc + j;
          const int rows = std::min(32, mc - g * 16);
          if (rows == 32 && cols == 32 && (mode != 2 || beta == 1.0f)) {  // a whole block: C in the tiles
            amx_kernel<2, 2>(chunks, a0, a1, bp + jp * panel, cb, ldc, mode != 0);
            continue;
          }
          if (two_a && two_b)
            amx_kernel<2, 2>(chunks, a0, a1, bp + jp * panel, acc, 32, false);
          else if (two_a)
            amx_kernel<2, 1>(chunks, a0, a1, bp + jp * panel, acc, 32, false);
          else if (two_b)
            amx_kernel<1, 2>(chunks, a0, a1, bp + jp * panel, acc, 32, false);
          else
            amx_kernel<1, 1>(chunks, a0, a1, bp + jp * panel, acc, 32, false);
          amx_store(acc, cb, ldc, rows, cols, mode, beta);
        }
      }
    }
  }
  amx::release();
}

void run(int m, int n, int64_t k, const ASource& a, const Src& b, float beta, float* c, int64_t ldc) {
  if (m <= 0 || n <= 0) return;
  if (k <= 0) {  // an empty sum: C = beta * C
    for (int i = 0; i < m; ++i)
      for (int j = 0; j < n; ++j) c[(int64_t)i * ldc + j] = beta == 0.0f ? 0.0f : beta * c[(int64_t)i * ldc + j];
    return;
  }
  const bool amx = gemm_bf16_kernel() == Bf16Kernel::amx;
  const int blocks = (n + kNc - 1) / kNc;
  // Below ~4 M multiply-adds (~50 us of one core at this rate) a team costs more than it saves.
  const bool team = !omp_in_parallel() && blocks > 1 && (double)m * n * k >= 4e6;
#pragma omp parallel for schedule(dynamic, 1) if (team)
  for (int blk = 0; blk < blocks; ++blk) {
    const int j0 = blk * kNc;
    if (amx)
      column_block_amx(m, k, a, b, j0, std::min(kNc, n - j0), beta, c, ldc);
    else
      column_block(m, k, a, b, j0, std::min(kNc, n - j0), beta, c, ldc);
  }
}

// A's blocks, in the order and layout column_block / column_block_amx read them.
Bf16PackedA prepare(int m, int64_t k, const ASource& a, Bf16Kernel kernel) {
  Bf16PackedA r;
  r.kernel = kernel;
  r.m = m;
  r.k = (int)k;
  std::vector<uint32_t> tmp;
  for (int64_t k0 = 0; k0 < k; k0 += 2 * kKcPairs) {
    const int64_t k1 = std::min<int64_t>(k, k0 + 2 * kKcPairs), pairs = (k1 - k0 + 1) / 2;
    const int chunks = (int)((pairs + kTilePairs - 1) / kTilePairs);
    for (int i0 = 0; i0 < m; i0 += kMc) {
      const int mc = std::min(kMc, m - i0);
      const size_t at = r.data.size(), panels = (size_t)((mc + kMr - 1) / kMr) * kMr * pairs;
      r.offsets.push_back((int64_t)at);
      if (kernel == Bf16Kernel::amx) {
        tmp.resize(panels);
        pack_a_block(a, m, i0, mc, k0, k1, tmp.data());
        r.data.resize(at + (size_t)((mc + 15) / 16) * chunks * 256);
        amx_layout_a(tmp.data(), mc, pairs, chunks, r.data.data() + at);
      } else {
        r.data.resize(at + panels);
        pack_a_block(a, m, i0, mc, k0, k1, r.data.data() + at);
      }
    }
  }
  return r;
}

}  // namespace
#endif

Bf16PackedA gemm_bf16_prepare_a(int m, int k, const float* ap) {
  if (!gemm_bf16_available()) throw Error("gemm_bf16: this CPU has no AVX512-BF16 (precision bf16 needs it)");
#if EMOTUNE_BF16_X86
  ASource as;
  as.panels = ap;
  as.k = k;
  return prepare(m, k, as, gemm_bf16_kernel());
#else
  (void)m, (void)k, (void)ap;
  return {};
#endif
}

void gemm_bf16_prepared_a(const Bf16PackedA& a, int n, const float* b, int64_t ldb, float* c, int64_t ldc) {
  if (a.kernel != gemm_bf16_kernel())
    throw Error(std::string("gemm_bf16: A was prepared for the ") + bf16_kernel_name(a.kernel) +
                " kernel, the process now runs " + bf16_kernel_name(gemm_bf16_kernel()));
#if EMOTUNE_BF16_X86
  ASource as;
  as.prepared = &a;
  as.k = a.k;
  run(a.m, n, a.k, as, Src{b, 1, ldb}, 0.0f, c, ldc);
#else
  (void)n, (void)b, (void)ldb, (void)c, (void)ldc;
#endif
}

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
