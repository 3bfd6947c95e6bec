// Direct bf16 convolution on AMX tiles or VDPBF16PS (contract in kernels/cpu/conv2d_bf16_direct.h).
#include "kernels/cpu/conv2d_bf16_direct.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/amx.h"
#include "kernels/cpu/bf16_simd.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/scratch.h"
#include "kernels/runtime.h"

namespace emotune {

#if defined(__x86_64__)
namespace {

// amx and rows compute the output over the padded image's row pitch: position j = oh * wx + ow for
// ow < wx, so that the inputs of consecutive positions for one tap are consecutive values of the
// padded image whatever the rows (the positions with ow >= OW are computed and dropped: (S - 1) /
// wx of the work). kvec broadcasts each position's input on its own and computes valid ones only.
enum class Form {
  amx,    // AMX tiles: 32 (K) x 32 (positions over the padded pitch)
  rows,   // VDPBF16PS, output channels across registers: 8 (K) x 48 (positions over the padded pitch)
  kvec,   // VDPBF16PS, output channels across lanes: 64 (K) x 6 (valid positions only)
};

struct Layout {
  Form form;
  int rows, cols;     // one block of the output: output channels x positions
  int pairs;          // channel pairs (amx: padded to whole tiles, 16 pairs = 32 channels)
  int hx, wx;         // the padded bf16 image: rows, columns (OH + R - 1, OW + S - 1)
  int64_t positions;  // OH * wx (kvec: OH * OW), rounded up to whole blocks of cols
  int kblocks;        // blocks of `rows` output channels
  int64_t plane() const { return (int64_t)hx * wx; }
};

// avx512-bf16: 8 x 3 ZMM accumulators (on Zen 4, vgg.conv1_2 at one thread: 6 x 4 ran as fast,
// 12 x 2 and 4 x 6 slower; 8 divides every K of both networks).
constexpr int kAvxRows = 8, kAvxCols = 48;
constexpr int kAmxRows = 32, kAmxCols = 32;  // amx: 2 x 2 accumulator tiles of 16 x 16
constexpr int kMaxParts = std::max(kAvxCols, kAmxCols) / 16;  // 16-position parts of one block

constexpr int kVecRows = 64, kVecCols = 6;  // kvec: 6 x 4 ZMM accumulators

Layout layout_of(const Conv2dShape& p, Form form) {
  Layout l;
  l.form = form;
  l.rows = form == Form::amx ? kAmxRows : form == Form::rows ? kAvxRows : kVecRows;
  l.cols = form == Form::amx ? kAmxCols : form == Form::rows ? kAvxCols : kVecCols;
  l.pairs = form == Form::amx ? (p.c + 31) / 32 * 16 : (p.c + 1) / 2;
  l.hx = p.out_h() + p.r - 1;
  l.wx = p.out_w() + p.s - 1;
  // kvec: blocks of valid positions only (oh * OW + ow); the others: over the padded pitch
  const int64_t span = form == Form::kvec ? (int64_t)p.out_h() * p.out_w() : (int64_t)p.out_h() * l.wx;
  l.positions = (span + l.cols - 1) / l.cols * l.cols;
  l.kblocks = (p.k + l.rows - 1) / l.rows;
  return l;
}

// The VDPBF16PS form for a shape. Over the padded pitch (rows) the columns past OW and the last
// block's tail are computed and dropped; kvec computes valid positions only, in blocks of 6, and K
// in blocks of 64, but its products run about 1.2x slower where both waste nothing (vgg.conv1_2
// on Zen 4: 0.81-0.83 of oneDNN's speed as rows at 96% useful work, 0.71-0.72 as kvec at 100%).
// So kvec where its useful share is more than 1.2x rows': small images (paper.conv7, 5 x 5
// outputs: rows compute 48 positions for 25, kvec 30; 0.38 -> 0.50 of oneDNN's speed).
Form avx512_form(const Conv2dShape& p) {
  const Layout r = layout_of(p, Form::rows), v = layout_of(p, Form::kvec);
  const double useful = (double)p.out_h() * p.out_w() * p.k;
  const double rows_eff = useful / ((double)r.positions * r.kblocks * r.rows);
  const double kvec_eff = useful / ((double)v.positions * v.kblocks * v.rows);
  return kvec_eff > 1.2 * rows_eff ? Form::kvec : Form::rows;
}

// r[i] lane j -> r[j] lane i: a 16 x 16 transpose of 32-bit values (unpacks within 128-bit lanes,
// then 128-bit lanes shuffled).
EMOTUNE_BF16_TARGET inline void transpose16(__m512i r[16]) {
  __m512i t[16];
  for (int i = 0; i < 16; i += 2) {
    t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
    t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
  }
  // r[4q + e], 128-bit lane L: rows 4q .. 4q + 3 at column 4L + e
  for (int i = 0; i < 16; i += 4) {
    r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
    r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
    r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
    r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
  }
  for (int e = 0; e < 4; ++e) {
    const __m512i a = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88), b = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xdd);
    const __m512i c = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88), d = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xdd);
    t[e] = _mm512_shuffle_i32x4(a, c, 0x88);
    t[8 + e] = _mm512_shuffle_i32x4(a, c, 0xdd);
    t[4 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
    t[12 + e] = _mm512_shuffle_i32x4(b, d, 0xdd);
  }
  for (int i = 0; i < 16; ++i) r[i] = t[i];
}

// The filters as bf16 pairs (channel 2q, 2q + 1), zero past K and C, in the order each kernel
// reads them:
//   amx: for each tap t, chunk of 16 pairs, block kt of 16 output channels: a [16 pairs][16 K]
//     tile (the B operand);
//   rows, kvec: for each block kb of l.rows output channels, pair q, tap t: the block's pairs
//     (rows: 8, broadcast one by one; kvec: 64, loaded as four vectors).
int64_t filters_size(const Conv2dShape& p, const Layout& l) {
  return (int64_t)p.r * p.s * l.kblocks * l.rows * l.pairs;
}

EMOTUNE_BF16_TARGET void pack_filters(const Conv2dShape& p, const Layout& l, const float* w, uint32_t* out) {
  const int taps = p.r * p.s;
  if (l.form == Form::amx) {
    // First w turned to [(c, tap)][K] (16 x 16 register transposes: w's rows are read whole, where
    // a tile row gathered 32 values from 32 rows of K), then each tile row is two contiguous
    // loads. Both in parallel: one thread packing while the other waited was ~7% of a forward at
    // two threads on AMX, plus as much again in the waiting thread (vgg.conv3_2 / conv4_2).
    const int chunks = l.pairs / 16, kp = l.kblocks * l.rows;
    const int64_t combos = (int64_t)p.c * taps, rows = (int64_t)l.pairs * 2 * taps;
    float* wt = aligned_scratch(Scratch::staging, rows * kp);
    const int64_t blocks = (rows + 15) / 16 * (kp / 16);
#pragma omp parallel for schedule(static) if (blocks > 16 && !omp_in_parallel())
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int64_t r0 = blk / (kp / 16) * 16;
      const int k0 = (int)(blk % (kp / 16)) * 16;
      const __mmask16 m = bf16::lanes_mask((int)std::min<int64_t>(16, std::max<int64_t>(0, combos - r0)));
      __m512i v[16];
      for (int i = 0; i < 16; ++i)
        v[i] = k0 + i < p.k ? _mm512_castps_si512(_mm512_maskz_loadu_ps(m, w + (int64_t)(k0 + i) * combos + r0))
                            : _mm512_setzero_si512();
      transpose16(v);  // v[j]: row r0 + j, lanes k0 ..
      for (int j = 0; j < 16 && r0 + j < rows; ++j) _mm512_storeu_si512(wt + (r0 + j) * kp + k0, v[j]);
    }
#pragma omp parallel for collapse(2) schedule(static) if ((int64_t)taps * chunks > 1 && !omp_in_parallel())
    for (int t = 0; t < taps; ++t)
      for (int q = 0; q < chunks; ++q)
        for (int kt = 0; kt < l.kblocks * 2; ++kt) {
          uint32_t* tile = out + (((int64_t)t * chunks + q) * l.kblocks * 2 + kt) * 256;
          for (int i = 0; i < 16; ++i) {
            const int64_t c0 = (q * 16 + i) * 2;
            const __m512 even = _mm512_loadu_ps(wt + (c0 * taps + t) * kp + kt * 16);
            const __m512 odd = _mm512_loadu_ps(wt + ((c0 + 1) * taps + t) * kp + kt * 16);
            _mm512_storeu_si512(tile + i * 16, bf16::pairs(even, odd));
          }
        }
    return;
  }
  // w[k, c, tap], zero past K and C.
  auto at = [&](int k, int c, int t) { return k < p.k && c < p.c ? w[((int64_t)k * p.c + c) * taps + t] : 0.0f; };
  // rows, kvec: block (kb, q) is taps x l.rows pairs, value t * l.rows + i from output channel
  // kb * l.rows + i. The blocks are independent, and the deep layers have millions of filter
  // values: in parallel.
  const int n = taps * l.rows;
  const int64_t blocks = (int64_t)l.kblocks * l.pairs;
#pragma omp parallel if (blocks > 64 && !omp_in_parallel())
  {
    std::vector<float> even((size_t)n + 16), odd((size_t)n + 16);
#pragma omp for schedule(static)
    for (int64_t blk = 0; blk < blocks; ++blk) {
      const int kb = (int)(blk / l.pairs), q = (int)(blk % l.pairs);
      for (int i = 0; i < l.rows; ++i)
        for (int t = 0; t < taps; ++t) {
          even[(size_t)t * l.rows + i] = at(kb * l.rows + i, 2 * q, t);
          odd[(size_t)t * l.rows + i] = at(kb * l.rows + i, 2 * q + 1, t);
        }
      for (int f0 = 0; f0 < n; f0 += 16)
        _mm512_mask_storeu_epi32(out + blk * n + f0, bf16::lanes_mask(n - f0),
                                 bf16::pairs(_mm512_loadu_ps(even.data() + f0), _mm512_loadu_ps(odd.data() + f0)));
    }
  }
}

// One image x [C][H][W] -> [pairs][hx][wx] of (channel 2q, 2q + 1) bf16 pairs, zero padded.
EMOTUNE_BF16_TARGET void pack_image(const Conv2dShape& p, const Layout& l, const float* x, uint32_t* out) {
  const int64_t hw = (int64_t)p.h * p.w;
  for (int q = 0; q < l.pairs; ++q) {
    const int c0 = 2 * q, c1 = 2 * q + 1;
    for (int i = 0; i < l.hx; ++i) {
      uint32_t* row = out + ((int64_t)q * l.hx + i) * l.wx;
      const int iy = i - p.pad_h;
      if (c0 >= p.c || iy < 0 || iy >= p.h) {
        std::memset(row, 0, (size_t)l.wx * 4);
        continue;
      }
      const float* r0 = x + (int64_t)c0 * hw + (int64_t)iy * p.w;
      const float* r1 = c1 < p.c ? x + (int64_t)c1 * hw + (int64_t)iy * p.w : nullptr;
      for (int j0 = 0; j0 < l.wx; j0 += 16) {
        // columns j0 .. j0 + 15 of the padded row read input columns j - pad_w
        const int lo = j0 - p.pad_w;
        // lanes j with 0 <= lo + j < W and j0 + j < wx
        const __mmask16 m = bf16::lanes_mask(std::min(l.wx - j0, p.w - lo)) & (__mmask16)~bf16::lanes_mask(-lo);
        const __m512 v0 = _mm512_maskz_loadu_ps(m, r0 + lo);
        const __m512 v1 = r1 ? _mm512_maskz_loadu_ps(m, r1 + lo) : _mm512_setzero_ps();
        _mm512_mask_storeu_epi32(row + j0, bf16::lanes_mask(l.wx - j0), bf16::pairs(v0, v1));
      }
    }
  }
}

// amx, positions-major: one image x [C][H][W] -> [hx][wx][pairs] of (channel 2q, 2q + 1) bf16
// pairs, zero padded: 16 positions x 16 pairs turned around in registers at a time.
EMOTUNE_BF16_TARGET void pack_image_nhwc(const Conv2dShape& p, const Layout& l, const float* x, uint32_t* out) {
  const int64_t hw = (int64_t)p.h * p.w;
  for (int i = 0; i < l.hx; ++i) {
    uint32_t* row = out + (int64_t)i * l.wx * l.pairs;
    const int iy = i - p.pad_h;
    if (iy < 0 || iy >= p.h) {
      std::memset(row, 0, (size_t)l.wx * l.pairs * 4);
      continue;
    }
    for (int j0 = 0; j0 < l.wx; j0 += 16) {
      const int lo = j0 - p.pad_w;
      const __mmask16 m = bf16::lanes_mask(std::min(l.wx - j0, p.w - lo)) & (__mmask16)~bf16::lanes_mask(-lo);
      for (int q0 = 0; q0 < l.pairs; q0 += 16) {
        __m512i r[16];
        for (int qq = 0; qq < 16; ++qq) {
          const int c0 = 2 * (q0 + qq), c1 = c0 + 1;
          const __m512 v0 = c0 < p.c ? _mm512_maskz_loadu_ps(m, x + c0 * hw + (int64_t)iy * p.w + lo) : _mm512_setzero_ps();
          const __m512 v1 = c1 < p.c ? _mm512_maskz_loadu_ps(m, x + c1 * hw + (int64_t)iy * p.w + lo) : _mm512_setzero_ps();
          r[qq] = bf16::pairs(v0, v1);
        }
        transpose16(r);  // r[jj]: position j0 + jj, pairs q0 ..
        for (int jj = 0; jj < 16 && j0 + jj < l.wx; ++jj)
          _mm512_storeu_si512(row + (int64_t)(j0 + jj) * l.pairs + q0, r[jj]);
      }
    }
  }
}

// The 32 x 32 block (channels kb*32.., positions j0..) of the output on AMX: A = 16 positions x
// 16 pairs of the positions-major image (rows `pairs` apart, each one cache line: a tap's shift
// moves whole rows), B = the filters' [16 pairs][16 K] tiles; the accumulators [positions][K] are
// turned to acc [32 K][32 positions] for store_block. (The channels-major layout before it, with
// the filters as A and 16 channel planes as B, read each B row across two cache lines; at one
// thread on the AMX machine, two alternated rounds against oneDNN, the geometric mean of oneDNN's
// time over emotune's went 0.63 -> 0.68 forward and 0.65 -> 0.68 backward-data.)
EMOTUNE_AMX_TARGET void block_amx(const Conv2dShape& p, const Layout& l, const uint32_t* wt, const uint32_t* img,
                                  const int32_t* toff, int kb, int64_t j0, float* acc) {
  const int chunks = l.pairs / 16, taps = p.r * p.s;
  const int64_t astride = (int64_t)l.pairs * 4;
  asm volatile("" ::: "memory");
  _tile_zero(0);
  _tile_zero(1);
  _tile_zero(2);
  _tile_zero(3);
  for (int t = 0; t < taps; ++t) {
    const uint32_t* a = img + (j0 + toff[t]) * l.pairs;
    const uint32_t* b = wt + ((int64_t)t * chunks * l.kblocks * 2 + kb * 2) * 256;
    for (int q = 0; q < chunks; ++q, a += 16, b += (int64_t)l.kblocks * 2 * 256) {
      _tile_loadd(4, a, astride);
      _tile_loadd(5, a + 16 * l.pairs, astride);
      _tile_loadd(6, b, 64);
      _tile_loadd(7, b + 256, 64);
      _tile_dpbf16ps(0, 4, 6);
      _tile_dpbf16ps(1, 4, 7);
      _tile_dpbf16ps(2, 5, 6);
      _tile_dpbf16ps(3, 5, 7);
    }
  }
  alignas(64) float c[32 * 32];
  _tile_stored(0, c, 128);
  _tile_stored(1, c + 16, 128);
  _tile_stored(2, c + 16 * 32, 128);
  _tile_stored(3, c + 16 * 32 + 16, 128);
  asm volatile("" ::: "memory");
  for (int pb = 0; pb < 2; ++pb)
    for (int kb2 = 0; kb2 < 2; ++kb2) {
      __m512i r[16];
      for (int i = 0; i < 16; ++i) r[i] = _mm512_load_si512(c + (pb * 16 + i) * 32 + kb2 * 16);
      transpose16(r);
      for (int j = 0; j < 16; ++j) _mm512_storeu_si512(acc + (kb2 * 16 + j) * 32 + pb * 16, r[j]);
    }
}

// One VDPBF16PS block, R x V ZMM accumulators, acc [R][16 V]. Per channel pair q and tap t, V
// vectors of 16 pairs are loaded and R pairs broadcast, R x V products; `wp` walks the filters of
// this block's output channels in (q, t) order.
//   rows (kChannelsInLanes false): R = 8 output channels, 16 V positions over the padded pitch
//     from `img` (already at the block's first position): the vectors are 16 consecutive
//     positions of the pair's plane, the broadcasts the channels' filter pairs;
//   kvec (true): R = 6 valid positions at offsets pos[0..5] of the plane, 16 V = 64 output
//     channels: the vectors are the channels' filter pairs, the broadcasts the positions' inputs.
// `toff[t]`: tap t's offset in a padded plane, (t / S) wx + t % S, from a table rather than a
// division per tap (Zen 4, 2026-12-07, two alternated rounds against oneDNN: at one thread the
// geometric mean went 0.70 -> 0.71 forward and 0.84 -> 0.87 backward-data, at two threads within
// noise; out-of-order execution hid most of the division).
template <int R, int V, bool kChannelsInLanes>
EMOTUNE_BF16_TARGET void dot_block(const Conv2dShape& p, const Layout& l, const uint32_t* wp, const uint32_t* img,
                                   const int32_t* pos, const int32_t* toff, float* acc) {
  const int taps = p.r * p.s;
  const int64_t plane = l.plane();
  __m512 c[R][V];
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) c[r][v] = _mm512_setzero_ps();
  for (int q = 0; q < l.pairs; ++q) {
    const uint32_t* plane_q = img + q * plane;
    for (int t = 0; t < taps; ++t, wp += kChannelsInLanes ? 16 * V : R) {
      const uint32_t* src = plane_q + toff[t];
      const uint32_t* vec = kChannelsInLanes ? wp : src;
      __m512bh b[V];
#pragma GCC unroll 8
      for (int v = 0; v < V; ++v) b[v] = (__m512bh)_mm512_loadu_si512(vec + 16 * v);
#pragma GCC unroll 16
      for (int r = 0; r < R; ++r) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32((int)(kChannelsInLanes ? src[pos[r]] : wp[r]));
#pragma GCC unroll 8
        for (int v = 0; v < V; ++v) c[r][v] = _mm512_dpbf16_ps(c[r][v], a, b[v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int r = 0; r < R; ++r)
#pragma GCC unroll 8
    for (int v = 0; v < V; ++v) _mm512_storeu_ps(acc + r * 16 * V + 16 * v, c[r][v]);
}

// acc [6][64] of block (kb, positions o0 .. o0 + 5 in output order) into y, dropping positions
// past OH * OW and channels past K.
void store_kvec(const Conv2dShape& p, const float* acc, const float* b, bool relu, const float* scale,
                const float* shift, int kb, int64_t o0, float* y_img) {
  const int64_t plane_out = (int64_t)p.out_h() * p.out_w();
  const int kend = std::min(kVecRows, p.k - kb * kVecRows);
  for (int i = 0; i < kVecCols && o0 + i < plane_out; ++i) {
    const float* a = acc + i * kVecRows;
    for (int j = 0; j < kend; ++j) {
      const int k = kb * kVecRows + j;
      float v = a[j] + (b ? b[k] : 0.0f);
      if (relu) v = !(v <= 0.0f) ? v : 0.0f;  // a NaN passes, as relu_forward lets it
      if (scale) v = v * scale[k] + shift[k];
      y_img[(int64_t)k * plane_out + o0 + i] = v;
    }
  }
}

// Positions j0 .. j0 + cols - 1 of acc [rows][cols] into y: the valid ones (ow < OW, j < OH wx)
// are, in order, the consecutive outputs from oh * OW + ow of each 16's first valid one, so each
// channel's are one compressed store per 16.
EMOTUNE_BF16_TARGET void store_block(const Conv2dShape& p, const Layout& l, const float* acc, const float* b,
                                     bool relu, const float* scale, const float* shift, int kb, int64_t j0,
                                     float* y_img) {
  const int64_t valid_end = (int64_t)p.out_h() * l.wx, plane_out = (int64_t)p.out_h() * p.out_w();
  const int parts = l.cols / 16;
  __mmask16 mask[kMaxParts] = {};
  int64_t first[kMaxParts] = {};  // output index of the first valid position of each 16
  for (int h = 0; h < parts; ++h) {
    const int64_t j = j0 + 16 * h;
    first[h] = (j / l.wx) * p.out_w() + std::min<int64_t>(j % l.wx, p.out_w());
    for (int t = 0; t < 16; ++t)
      if (j + t < valid_end && (j + t) % l.wx < p.out_w()) mask[h] |= (__mmask16)(1u << t);
  }
  for (int i = 0; i < l.rows; ++i) {
    const int k = kb * l.rows + i;
    if (k >= p.k) break;
    const __m512 bias = _mm512_set1_ps(b ? b[k] : 0.0f);
    float* yk = y_img + (int64_t)k * plane_out;
    for (int h = 0; h < parts; ++h) {
      if (!mask[h]) continue;
      __m512 v = _mm512_add_ps(_mm512_loadu_ps(acc + (int64_t)i * l.cols + 16 * h), bias);
      if (relu) v = _mm512_max_ps(_mm512_setzero_ps(), v);  // a NaN passes (the second operand)
      if (scale) v = _mm512_add_ps(_mm512_mul_ps(v, _mm512_set1_ps(scale[k])), _mm512_set1_ps(shift[k]));
      // Compressed in a register, then a masked store: a compressing store to memory is
      // microcoded on Zen 4 (vgg.conv1_2 forward at one thread: 72.6 -> 64.2 ms).
      if (mask[h] == 0xFFFF)
        _mm512_storeu_ps(yk + first[h], v);
      else
        _mm512_mask_storeu_ps(yk + first[h], bf16::lanes_mask(__builtin_popcount(mask[h])),
                              _mm512_maskz_compress_ps(mask[h], v));
    }
  }
}


// ---- Backward-weight (conv2d_backward_weight_bf16_direct) ----

// Sizes of the backward-weight's packed operands for a shape. dy's positions are taken in pairs
// (ow, ow + 1) over a row pitch rounded up to even (so a pair never spans two rows; the odd
// widths of `paper` waste one column in OW + 1, where a pitch of the padded image's width would
// waste S - 1: paper.conv7 5 -> 6 instead of 5 -> 8); each pair's x is found through a table of
// its first position in the padded image (xbase).
struct WLayout {
  int dp;          // dy's row pitch in pairs' positions: OW rounded up to even (dy zero past OW)
  int wx, hx;      // the padded x image: OW + S - 1 columns (the row pitch), OH + R - 1 rows
  int64_t xplane;  // bf16 values of one channel of one image: hx + 1 rows (the last zero: a pair
                   // at the last column of the last row reads one value past it)
  int p2;          // position pairs of one image: OH dp / 2
  int kp;          // K rounded up to 16 lanes
  int combos;      // C R S: the rows of a worker's accumulators, (c, r, s) in dw's order
  int group;       // images packed at once: one chunk's worth of pairs (small images), else one
};

// 64 (K) x 6 (c, r, s), 48 x 8, 32 x 12 or 16 x 24: 24 ZMM accumulators whatever K leaves for
// the last block. The accumulators' rows are padded to a multiple of 48, so that every block is
// whole and the final transposes take whole 16 rows (the padding rows read any valid x and are
// never summed).
constexpr int kWAcc = 24;
// Pairs per pass of a block: its dy (up to 64 lanes x 4 bytes each) streams from L2 in 96 KB
// while the accumulators are loaded and stored once per pass.
constexpr int kWChunk = 384;

WLayout wlayout_of(const Conv2dShape& p) {
  WLayout l;
  l.dp = (p.out_w() + 1) / 2 * 2;
  l.wx = p.out_w() + p.s - 1;
  l.hx = p.out_h() + p.r - 1;
  l.xplane = (int64_t)(l.hx + 1) * l.wx;
  l.p2 = p.out_h() * l.dp / 2;
  l.kp = (p.k + 15) / 16 * 16;
  l.combos = p.c * p.r * p.s;
  l.group = std::max(1, std::min(p.n, (kWChunk + l.p2 - 1) / l.p2));
  return l;
}

// xbase[j]: pair j's first position (oh, ow) in the padded image, oh wx + ow.
std::vector<int32_t> wpair_bases(const WLayout& l) {
  std::vector<int32_t> b((size_t)l.p2);
  for (int j = 0; j < l.p2; ++j) b[(size_t)j] = 2 * j / l.dp * l.wx + 2 * j % l.dp;
  return b;
}

// One image x [C][H][W] -> [C][hx + 1][wx] bf16, zero padded.
// One channel of one image, src [H][W] -> `rows` rows of `wx` bf16 at out: row i, column j holds
// input (i - pad_h, j - pad_w), zero outside the image (both backward-weight forms' x planes).
EMOTUNE_BF16_TARGET void pad_plane_bf16(const Conv2dShape& p, int rows, int wx, const float* src, uint16_t* out) {
  for (int i = 0; i < rows; ++i) {
    uint16_t* row = out + (int64_t)i * wx;
    const int iy = i - p.pad_h;
    if (iy < 0 || iy >= p.h) {
      std::memset(row, 0, (size_t)wx * 2);
      continue;
    }
    const float* in = src + (int64_t)iy * p.w;
    for (int j0 = 0; j0 < wx; j0 += 16) {
      const int lo = j0 - p.pad_w;  // input column of lane 0
      const __mmask16 m = bf16::lanes_mask(std::min(wx - j0, p.w - lo)) & (__mmask16)~bf16::lanes_mask(-lo);
      const __m256i v = (__m256i)_mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, in + lo));
      _mm256_mask_storeu_epi16(row + j0, bf16::lanes_mask(wx - j0), v);
    }
  }
}

EMOTUNE_BF16_TARGET void wpack_image(const Conv2dShape& p, const WLayout& l, const float* x, uint16_t* out) {
  const int64_t hw = (int64_t)p.h * p.w;
  for (int c = 0; c < p.c; ++c) pad_plane_bf16(p, l.hx + 1, l.wx, x + c * hw, out + (int64_t)c * l.xplane);
}

// 16 channels kv .. kv + 15 of one dy image [K][OH][OW], row oh, columns ow0 .. ow0 + 31 (zero past
// OW and K) -> r[j]: the pairs (ow0 + 2j, ow0 + 2j + 1) of the 16 channels, one per lane (turned
// around in registers); each channel's values are added to its bias sum bsum [kp][8] in double.
EMOTUNE_BF16_TARGET inline void dy_row_pairs(const Conv2dShape& p, const float* dy, int kv, int oh, int ow0,
                                             double* bsum, __m512i r[16]) {
  const int64_t plane = (int64_t)p.out_h() * p.out_w();
  const int ow_n = p.out_w();
  const __mmask16 m_lo = bf16::lanes_mask(ow_n - ow0), m_hi = bf16::lanes_mask(ow_n - ow0 - 16);
  for (int i = 0; i < 16; ++i) {
    if (kv + i >= p.k) {
      r[i] = _mm512_setzero_si512();
      continue;
    }
    const float* src = dy + (kv + i) * plane + (int64_t)oh * ow_n + ow0;
    const __m512 lo = _mm512_maskz_loadu_ps(m_lo, src), hi = _mm512_maskz_loadu_ps(m_hi, src + 16);
    // lane q: the pair (ow0 + 2q, ow0 + 2q + 1), lo in the low half
    r[i] = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
    double* b = bsum + (int64_t)(kv + i) * 8;
    __m512d sum = _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(lo)),
                                _mm512_cvtps_pd(_mm512_extractf32x8_ps(lo, 1)));
    sum = _mm512_add_pd(sum, _mm512_add_pd(_mm512_cvtps_pd(_mm512_castps512_ps256(hi)),
                                           _mm512_cvtps_pd(_mm512_extractf32x8_ps(hi, 1))));
    _mm512_storeu_pd(b, _mm512_add_pd(_mm512_loadu_pd(b), sum));
  }
  transpose16(r);
}

// One image dy [K][OH][OW] -> pairs (ow, ow + 1) over the even pitch dp, 16 output channels per
// vector: for each block of 64 channels from k0 (the last one kw = kp - k0 wide), [pair f][kw]
// at d + k0 * F + f * kw, f = this image's first pair `f0` + its pair j. Zero past OW and K.
// 16 channels' rows of 16 pairs at a time, turned around in registers.
// bsum [kp][8]: each channel's dy summed in double, 8 lanes (the bias gradient, read here once).
EMOTUNE_BF16_TARGET void wpack_dy(const Conv2dShape& p, const WLayout& l, const float* dy, int64_t F, int64_t f0,
                                  uint32_t* d, double* bsum) {
  for (int k0 = 0; k0 < l.kp; k0 += 64) {
    const int kw = std::min(64, l.kp - k0);
    for (int kv = k0; kv < k0 + kw; kv += 16)
      for (int oh = 0; oh < p.out_h(); ++oh)
        for (int ow0 = 0; ow0 < l.dp; ow0 += 32) {
          __m512i r[16];
          dy_row_pairs(p, dy, kv, oh, ow0, bsum, r);
          uint32_t* dst = d + (int64_t)k0 * F + (f0 + (int64_t)oh * (l.dp / 2) + ow0 / 2) * kw + (kv - k0);
          for (int q = 0, pairs = std::min(16, (l.dp - ow0) / 2); q < pairs; ++q)
            _mm512_storeu_si512(dst + (int64_t)q * kw, r[q]);
        }
  }
}

// acc [NC rows of `stride`][16 KV] += the block's products over pairs f0 .. f1 - 1 of the group:
// dy pairs from d ([f][kw], this block's lanes), x pairs from image f / p2 of the group at
// xoff[i] + xbase[f % p2] values into it (an unaligned 32-bit read of two bf16).
template <int KV, int NC>
EMOTUNE_BF16_TARGET void wgrad_block(const WLayout& l, const uint32_t* d, int kw, const uint16_t* xg, int64_t ximg,
                                     const int64_t* xoff, const int32_t* xbase, int64_t f0, int64_t f1, float* acc,
                                     int64_t stride) {
  __m512 c[NC][KV];
#pragma GCC unroll 24
  for (int i = 0; i < NC; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) c[i][v] = _mm512_loadu_ps(acc + i * stride + 16 * v);
  for (int64_t f = f0; f < f1;) {
    const int64_t g = f / l.p2, end = std::min(f1, (g + 1) * l.p2);
    const uint16_t* xi[NC];
#pragma GCC unroll 24
    for (int i = 0; i < NC; ++i) xi[i] = xg + g * ximg + xoff[i];
    const uint32_t* dp = d + f * kw;
    for (int64_t j = f - g * l.p2, jend = end - g * l.p2; j < jend; ++j, dp += kw) {
      const int64_t at = xbase[j];
      __m512bh b[KV];
#pragma GCC unroll 4
      for (int v = 0; v < KV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(dp + 16 * v);
#pragma GCC unroll 24
      for (int i = 0; i < NC; ++i) {
        int32_t pair;
        std::memcpy(&pair, xi[i] + at, 4);
        const __m512bh a = (__m512bh)_mm512_set1_epi32(pair);
#pragma GCC unroll 4
        for (int v = 0; v < KV; ++v) c[i][v] = _mm512_dpbf16_ps(c[i][v], a, b[v]);
      }
    }
    f = end;
  }
#pragma GCC unroll 24
  for (int i = 0; i < NC; ++i)
#pragma GCC unroll 4
    for (int v = 0; v < KV; ++v) _mm512_storeu_ps(acc + i * stride + 16 * v, c[i][v]);
}

// dw[k][row] = the workers' accumulator row `row`, lane k, summed in worker order: 16 rows x 16
// lanes at a time, turned around in registers (rows: a multiple of 16).
EMOTUNE_BF16_TARGET void finish_weight(const Conv2dShape& p, int64_t combos, int kp, int64_t rows,
                                       const std::vector<const float*>& acc, float* dw) {
  const int64_t blocks = rows / 16 * (kp / 16);
#pragma omp parallel for schedule(static) if (acc.size() > 1 && blocks > 16 && !omp_in_parallel())
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const int64_t r0 = blk / (kp / 16) * 16, k0 = blk % (kp / 16) * 16;
    if (r0 >= combos) continue;
    __m512i v[16];
    for (int i = 0; i < 16; ++i) {
      __m512 s = _mm512_loadu_ps(acc[0] + (r0 + i) * kp + k0);
      for (size_t t = 1; t < acc.size(); ++t) s = _mm512_add_ps(s, _mm512_loadu_ps(acc[t] + (r0 + i) * kp + k0));
      v[i] = _mm512_castps_si512(s);
    }
    transpose16(v);  // v[j]: lane k0 + j of rows r0 .. r0 + 15
    const __mmask16 m = bf16::lanes_mask((int)(combos - r0));
    for (int j = 0; j < 16 && k0 + j < p.k; ++j) _mm512_mask_storeu_epi32(dw + (k0 + j) * combos + r0, m, v[j]);
  }
}

// A worker's sums for the backward-weight, n floats zeroed, in the calling thread's scratch: they
// stay valid after its parallel region (OpenMP keeps its threads), for finish_weight.
inline float* worker_sums(int64_t n) {
  float* a = aligned_scratch(Scratch::winograd_m, n);
  std::fill(a, a + n, 0.0f);
  return a;
}

// db[k]: the workers' double sums of channel k's dy (8 lanes each), added in worker order.
void finish_bias(const Conv2dShape& p, const std::vector<std::vector<double>>& bsum, float* db) {
  for (int k = 0; k < p.k; ++k) {
    double v = 0;
    for (const auto& b : bsum)
      for (int e = 0; e < 8; ++e) v += b[(size_t)k * 8 + e];
    db[k] = (float)v;
  }
}

// The backward-weight's workers: each sums its own contiguous run of images n0 .. n1 - 1 into its
// sums (`rows` x kp floats, zeroed; rows in dw's (c, r, s) order, padded past `combos`) and its
// bias sums ([kp][8] doubles) by body(n0, n1, sums, bsum); then the partials are added in worker
// order (a fixed order: deterministic for a given number of threads) into dw and db.
template <typename Body>
void weight_by_workers(const Conv2dShape& p, int64_t combos, int64_t rows, int kp, float* dw, float* db, Body body) {
  const int workers = omp_in_parallel() ? 1 : std::max(1, std::min(omp_get_max_threads(), p.n));
  std::vector<const float*> acc((size_t)workers);
  std::vector<std::vector<double>> bsum((size_t)workers);
#pragma omp parallel for num_threads(workers) schedule(static, 1) if (workers > 1)
  for (int t = 0; t < workers; ++t) {
    float* a = worker_sums(rows * kp);
    acc[(size_t)t] = a;
    bsum[(size_t)t].assign((size_t)kp * 8, 0.0);
    body((int)((int64_t)p.n * t / workers), (int)((int64_t)p.n * (t + 1) / workers), a, bsum[(size_t)t].data());
  }
  finish_weight(p, combos, kp, rows, acc, dw);
  if (db) finish_bias(p, bsum, db);
}

using WBlockFn = void (*)(const WLayout&, const uint32_t*, int, const uint16_t*, int64_t, const int64_t*,
                          const int32_t*, int64_t, int64_t, float*, int64_t);
constexpr WBlockFn kWBlock[4] = {wgrad_block<1, 24>, wgrad_block<2, 12>, wgrad_block<3, 8>, wgrad_block<4, 6>};

// ---- Backward-weight on AMX (the amx form of conv2d_backward_weight_bf16_direct) ----
//
// The positions of a group of images run over the padded image's pitch, one image after the
// other: position q = g hx wx + oh wx + ow of image g, dy zero where ow >= OW or oh >= OH. Then
// the x of (c, r, s) for position q is value q + r wx + s of channel c's packed plane ([C][group
// hx wx + slack], the images one after the other), so 32 consecutive positions of one (c, r, s) are
// 32 consecutive bf16: one row of an A tile, and 16 channels at one tap are 16 rows a plane apart.
// dy is turned to [pair][K] (as for VDPBF16PS): the B tile, 16 position pairs x 16 output
// channels. A 32 (c) x 32 (K) block at one tap lives in four accumulator tiles, which are loaded
// from and stored to the worker's [C R S][kp] sums once per chunk of pairs.
struct ALayout {
  int wx, hx;      // the padded image: OW + S - 1 columns rounded up to even (the pitch), OH + R - 1 rows
  int64_t span;    // positions of one image: hx wx
  int group;       // images per group
  int64_t fp;      // position pairs of a whole group, rounded up to whole tiles (16)
  int64_t xs;      // bf16 values of one channel of a group: 2 fp + the taps' reach, zero past the images
  int kp;          // K rounded up to 16 lanes
  int64_t combos;  // C R S
};

// Pairs per pass of a block (about: the group's tiles are spread evenly over its passes) and
// input channels per set of accumulators: a set's sums (64 channels x R S x 64 lanes, 147 KB at
// 3 x 3) stay in L2 while the group's pairs stream past. Tried on the AMX machine of
// docs/benchmarks.md at one thread, vgg.conv1_2 / paper.conv3 / vgg.conv3_2 / vgg.conv4_2:
// 128, 256, 384 and 768 pairs, sets of 64 channels or all: 384 with 64 about the best (the deep
// layers, whose sums outgrow L2, gained most from the sets), the others within the noise.
constexpr int kAChunk = 384, kACSet = 64;

ALayout alayout_of(const Conv2dShape& p) {
  ALayout l;
  l.wx = (p.out_w() + p.s) / 2 * 2;  // OW + S - 1 rounded up to even: no pair spans two rows
  l.hx = p.out_h() + p.r - 1;
  l.span = (int64_t)l.hx * l.wx;
  l.group = (int)std::max<int64_t>(1, std::min<int64_t>(p.n, (2 * kAChunk + l.span - 1) / l.span));
  l.fp = ((int64_t)l.group * l.span + 31) / 32 * 16;
  l.xs = 2 * l.fp + (int64_t)(p.r - 1) * l.wx + p.s + 32;
  l.kp = (p.k + 15) / 16 * 16;
  l.combos = (int64_t)p.c * p.r * p.s;
  return l;
}

// gn images x [C][H][W] -> [C][xs] bf16: image g's padded plane at g span, zeros elsewhere.
EMOTUNE_BF16_TARGET void apack_images(const Conv2dShape& p, const ALayout& l, int gn, const float* x, uint16_t* out) {
  const int64_t hw = (int64_t)p.h * p.w, x_img = (int64_t)p.c * hw;
  for (int c = 0; c < p.c; ++c) {
    uint16_t* plane = out + (int64_t)c * l.xs;
    for (int g = 0; g < gn; ++g) pad_plane_bf16(p, l.hx, l.wx, x + g * x_img + c * hw, plane + g * l.span);
    std::memset(plane + gn * l.span, 0, (size_t)(l.xs - gn * l.span) * 2);
  }
}

// gn images dy [K][OH][OW] -> for each block of 64 channels from k0 (the last kw = kp - k0 wide),
// [pair f][kw] at d + k0 fp + f kw, over the group's positions (zero where no output is: the
// columns past OW, the rows past OH, the tail). wx is even, so that a pair never spans two rows:
// 16 channels' rows of 16 pairs at a time, turned around in registers. bsum [kp][8]: each
// channel's dy summed in double (the bias gradient, read here once).
EMOTUNE_BF16_TARGET void apack_dy(const Conv2dShape& p, const ALayout& l, int gn, const float* dy, uint32_t* d,
                                  double* bsum) {
  const int64_t y_img = (int64_t)p.k * p.out_h() * p.out_w();
  const int row_pairs = l.wx / 2;
  for (int k0 = 0; k0 < l.kp; k0 += 64) {
    const int kw = std::min(64, l.kp - k0);
    uint32_t* dk = d + (int64_t)k0 * l.fp;
    for (int g = 0; g < gn; ++g) {
      const int64_t f_img = g * l.span / 2;  // the image's first pair
      // the rows past OH (the taps' reach) carry no output
      std::memset(dk + (f_img + (int64_t)p.out_h() * row_pairs) * kw, 0,
                  (size_t)((l.hx - p.out_h()) * row_pairs * kw) * 4);
      for (int kv = k0; kv < k0 + kw; kv += 16)
        for (int oh = 0; oh < p.out_h(); ++oh)
          for (int ow0 = 0; ow0 < l.wx; ow0 += 32) {
            __m512i r[16];
            dy_row_pairs(p, dy + g * y_img, kv, oh, ow0, bsum, r);
            uint32_t* dst = dk + (f_img + (int64_t)oh * row_pairs + ow0 / 2) * kw + (kv - k0);
            for (int j = 0, n = std::min(16, row_pairs - ow0 / 2); j < n; ++j)
              _mm512_storeu_si512(dst + (int64_t)j * kw, r[j]);
          }
    }
    const int64_t f_end = gn * l.span / 2;  // the tail: no images
    std::memset(dk + f_end * kw, 0, (size_t)((l.fp - f_end) * kw) * 4);
  }
}

// acc rows (c0 + 16 a) R S + tap, lanes kt + 16 b, += the products over pairs f0 .. f1 - 1 (whole
// tiles): MA x NB accumulator tiles (0 .. 3), A tiles 4, 5 (x), B tiles 6, 7 (dy). `a` is x at
// channel c0 and the tap's offset, `b` dy's block at lane kt, `acc` the first tile's first value.
template <int MA, int NB>
EMOTUNE_AMX_TARGET void ablock(const ALayout& l, const uint16_t* a, const uint32_t* b, int kw, int64_t f0, int64_t f1,
                               float* acc, int64_t acc_stride) {
  const int64_t astride = l.xs * 2, bstride = (int64_t)kw * 4, cstride = acc_stride * 4;
  const int64_t a1 = 16 * l.xs;  // the second A tile: 16 channels on
  asm volatile("" ::: "memory");
  _tile_loadd(0, acc, cstride);
  if constexpr (NB > 1) _tile_loadd(1, acc + 16, cstride);
  if constexpr (MA > 1) _tile_loadd(2, acc + 16 * acc_stride, cstride);
  if constexpr (MA > 1 && NB > 1) _tile_loadd(3, acc + 16 * acc_stride + 16, cstride);
  for (int64_t f = f0; f < f1; f += 16) {
    _tile_loadd(4, a + 2 * f, astride);
    if constexpr (MA > 1) _tile_loadd(5, a + a1 + 2 * f, astride);
    _tile_loadd(6, b + f * kw, bstride);
    if constexpr (NB > 1) _tile_loadd(7, b + f * kw + 16, bstride);
    _tile_dpbf16ps(0, 4, 6);
    if constexpr (NB > 1) _tile_dpbf16ps(1, 4, 7);
    if constexpr (MA > 1) _tile_dpbf16ps(2, 5, 6);
    if constexpr (MA > 1 && NB > 1) _tile_dpbf16ps(3, 5, 7);
  }
  _tile_stored(0, acc, cstride);
  if constexpr (NB > 1) _tile_stored(1, acc + 16, cstride);
  if constexpr (MA > 1) _tile_stored(2, acc + 16 * acc_stride, cstride);
  if constexpr (MA > 1 && NB > 1) _tile_stored(3, acc + 16 * acc_stride + 16, cstride);
  asm volatile("" ::: "memory");
}

using ABlockFn = void (*)(const ALayout&, const uint16_t*, const uint32_t*, int, int64_t, int64_t, float*, int64_t);
constexpr ABlockFn kABlock[2][2] = {{ablock<1, 1>, ablock<1, 2>}, {ablock<2, 1>, ablock<2, 2>}};

// One worker's images n0 .. n1 - 1 into acc [C R S][kp] (rows in dw's (c, r, s) order) and bsum.
EMOTUNE_AMX_TARGET void weight_amx_worker(const Conv2dShape& p, const ALayout& l, const float* x, const float* dy,
                                          int n0, int n1, float* acc, double* bsum) {
  const int64_t x_img = (int64_t)p.c * p.h * p.w, y_img = (int64_t)p.k * p.out_h() * p.out_w();
  const int taps = p.r * p.s;
  uint16_t* xg = reinterpret_cast<uint16_t*>(aligned_scratch(Scratch::columns, (p.c * l.xs + 1) / 2));
  uint32_t* d = reinterpret_cast<uint32_t*>(aligned_scratch(Scratch::staging, l.kp * l.fp));
  amx::configure();
  for (int g0 = n0; g0 < n1; g0 += l.group) {
    const int gn = std::min(l.group, n1 - g0);
    apack_images(p, l, gn, x + g0 * x_img, xg);
    apack_dy(p, l, gn, dy + g0 * y_img, d, bsum);
    const int64_t fn = ((int64_t)gn * l.span + 31) / 32 * 16;  // this group's pairs, whole tiles
    // Passes of about kAChunk pairs, as many whole tiles each as the group allows
    const int64_t steps = fn / 16, passes = (steps * 16 + kAChunk - 1) / kAChunk, per = (steps + passes - 1) / passes;
    for (int cs = 0; cs < p.c; cs += kACSet)
      for (int k0 = 0; k0 < l.kp; k0 += 64) {
        const int kw = std::min(64, l.kp - k0);
        for (int64_t f0 = 0; f0 < fn; f0 += per * 16) {
          const int64_t f1 = std::min(fn, f0 + per * 16);
          for (int c0 = cs; c0 < std::min(p.c, cs + kACSet); c0 += 32) {
            const int ma = std::min(2, (p.c - c0) / 16);
            for (int kt = 0; kt < kw; kt += 32) {
              const int nb = std::min(2, (kw - kt) / 16);
              for (int t = 0; t < taps; ++t) {
                const int64_t off = (int64_t)(t / p.s) * l.wx + t % p.s;
                kABlock[ma - 1][nb - 1](l, xg + (int64_t)c0 * l.xs + off, d + (int64_t)k0 * l.fp + kt, kw, f0, f1,
                                        acc + ((int64_t)c0 * taps + t) * l.kp + k0 + kt, (int64_t)taps * l.kp);
              }
            }
          }
        }
      }
  }
  amx::release();
}

}  // namespace
#endif

bool conv2d_bf16_direct_applies(const Conv2dShape& p) {
  return gemm_bf16_available() && cpu_gemm_runs_bf16(p.c) && p.stride_h == 1 && p.stride_w == 1 && p.k >= 16 &&
         p.out_h() >= 1 && p.out_w() >= 1;
}

// The packed filters of one shape, for the kernel and form they were packed for.
struct Bf16DirectFilters {
  Bf16Kernel kernel = Bf16Kernel::none;
  int form = 0;
  std::vector<uint32_t> data;
};

#if defined(__x86_64__)
namespace {
Form form_of(const Conv2dShape& p) { return gemm_bf16_kernel() == Bf16Kernel::amx ? Form::amx : avx512_form(p); }
}  // namespace
#endif

std::shared_ptr<const Bf16DirectFilters> conv2d_bf16_direct_filters(const Conv2dShape& p, const float* w) {
#if defined(__x86_64__)
  if (!conv2d_bf16_direct_applies(p)) return nullptr;
  auto f = std::make_shared<Bf16DirectFilters>();
  const Layout l = layout_of(p, form_of(p));
  f->kernel = gemm_bf16_kernel();
  f->form = (int)l.form;
  f->data.resize((size_t)filters_size(p, l));
  pack_filters(p, l, w, f->data.data());
  return f;
#else
  (void)p, (void)w;
  return nullptr;
#endif
}

bool conv2d_forward_bf16_direct(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                                float* y, const Bf16DirectFilters* prepared, const float* scale, const float* shift) {
#if defined(__x86_64__)
  if (!conv2d_bf16_direct_applies(p)) return false;
  const Layout l = layout_of(p, form_of(p));
  // Filters: prepared where they were packed for this kernel and form, else packed now into
  // per-thread scratch (kept between calls, as the images' is: fresh pages for each were about 5%
  // of a forward at one thread on AMX).
  const uint32_t* wt = nullptr;
  if (prepared && prepared->kernel == gemm_bf16_kernel() && prepared->form == (int)l.form &&
      (int64_t)prepared->data.size() == filters_size(p, l)) {
    wt = prepared->data.data();
  } else {
    uint32_t* packed = reinterpret_cast<uint32_t*>(aligned_scratch(Scratch::train_filters, filters_size(p, l)));
    pack_filters(p, l, w, packed);
    wt = packed;
  }
  const int64_t img_size = (int64_t)l.pairs * l.plane(), x_img = (int64_t)p.c * p.h * p.w;
  const int64_t y_img = (int64_t)p.k * p.out_h() * p.out_w();
  const int taps = p.r * p.s;
  std::vector<int32_t> toff((size_t)taps);
  for (int t = 0; t < taps; ++t) toff[(size_t)t] = t / p.s * l.wx + t % p.s;
  // kvec: each output position's offset in a padded plane (the last block's tail repeats the
  // last position; it is computed and not stored).
  std::vector<int32_t> pos;
  if (l.form == Form::kvec) {
    const int64_t valid = (int64_t)p.out_h() * p.out_w();
    pos.resize((size_t)l.positions);
    for (int64_t o = 0; o < l.positions; ++o) {
      const int64_t v = std::min(o, valid - 1);
      pos[(size_t)o] = (int32_t)(v / p.out_w() * l.wx + v % p.out_w());
    }
  }
  // Images to the workers; with fewer images than workers (inference of one face), (image, block
  // of output channels) pairs, each worker packing the images of its pairs.
  const bool split_k = !omp_in_parallel() && p.n < omp_get_max_threads() && l.kblocks > 1;
  const int64_t items = split_k ? (int64_t)p.n * l.kblocks : p.n;
#pragma omp parallel if (items > 1 && !omp_in_parallel())
  {
    // The last plane's last blocks read up to positions - OH wx + S - 1 values past it: zeros.
    // (positions-major: as many positions of `pairs` values each)
    const int64_t slack = (std::max<int64_t>(0, l.positions - (int64_t)p.out_h() * l.wx) + p.s + l.cols) *
                          (l.form == Form::amx ? l.pairs : 1);
    uint32_t* img = reinterpret_cast<uint32_t*>(aligned_scratch(Scratch::columns, img_size + slack));
    std::memset(img + img_size, 0, (size_t)slack * 4);
    constexpr int kAcc = std::max({kAmxRows * kAmxCols, kAvxRows * kAvxCols, kVecRows * kVecCols});
    alignas(64) float acc[kAcc];
    if (l.form == Form::amx) amx::configure();
    int64_t packed_n = -1;
#pragma omp for schedule(dynamic, 1)
    for (int64_t item = 0; item < items; ++item) {
      const int64_t n = split_k ? item / l.kblocks : item;
      const int kb0 = split_k ? (int)(item % l.kblocks) : 0, kb1 = split_k ? kb0 + 1 : l.kblocks;
      if (n != packed_n) {
        if (l.form == Form::amx)
          pack_image_nhwc(p, l, x + n * x_img, img);
        else
          pack_image(p, l, x + n * x_img, img);
        packed_n = n;
      }
      // One block of filters over all positions before the next: its filters (amx: 9 taps x C /
      // 32 x 2 KB) stay in cache while the image's planes stream past (paper.conv2 on AMX: 16 ->
      // 12 ms, the other layers within noise; measured 2026-12-06, bench_vs_onednn).
      for (int kb = kb0; kb < kb1; ++kb) {
        const uint32_t* wk = wt + (int64_t)kb * l.pairs * taps * l.rows;  // rows, kvec: this block's filters
        for (int64_t j0 = 0; j0 < l.positions; j0 += l.cols) {
          switch (l.form) {
            case Form::amx:
              block_amx(p, l, wt, img, toff.data(), kb, j0, acc);
              break;
            case Form::rows:
              dot_block<kAvxRows, kAvxCols / 16, false>(p, l, wk, img + j0, nullptr, toff.data(), acc);
              break;
            case Form::kvec:
              dot_block<kVecCols, kVecRows / 16, true>(p, l, wk, img, pos.data() + j0, toff.data(), acc);
              store_kvec(p, acc, b, relu, scale, shift, kb, j0, y + n * y_img);
              continue;
          }
          store_block(p, l, acc, b, relu, scale, shift, kb, j0, y + n * y_img);
        }
      }
    }
    if (l.form == Form::amx) amx::release();
  }
  return true;
#else
  (void)p, (void)x, (void)w, (void)b, (void)relu, (void)y, (void)prepared, (void)scale, (void)shift;
  return false;
#endif
}

bool conv2d_bf16_direct_for_inference(const Conv2dShape& p) {
  return conv2d_bf16_direct_applies(p) && gemm_bf16_kernel() == Bf16Kernel::amx;
}

bool conv2d_bf16_direct_weight_applies(const Conv2dShape& p) {
  return gemm_bf16_available() && cpu_gemm_runs_bf16((int64_t)p.n * p.out_h() * p.out_w()) && p.stride_h == 1 &&
         p.stride_w == 1 && p.out_h() >= 1 && p.out_w() >= 1;
}

bool conv2d_bf16_direct_weight_on_amx(const Conv2dShape& p) {
  return conv2d_bf16_direct_weight_applies(p) && gemm_bf16_kernel() == Bf16Kernel::amx && p.c % 16 == 0;
}

bool conv2d_backward_weight_bf16_direct(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db) {
#if defined(__x86_64__)
  if (!conv2d_bf16_direct_weight_applies(p)) return false;
  if (conv2d_bf16_direct_weight_on_amx(p)) {
    const ALayout l = alayout_of(p);
    weight_by_workers(p, l.combos, l.combos, l.kp, dw, db, [&](int n0, int n1, float* a, double* bsum) {
      weight_amx_worker(p, l, x, dy, n0, n1, a, bsum);
    });
    return true;
  }
  const WLayout l = wlayout_of(p);
  const int64_t rows = (int64_t)(l.combos + 47) / 48 * 48;  // accumulator rows, padded (kWAcc)
  const int64_t x_img = (int64_t)p.c * p.h * p.w, y_img = (int64_t)p.k * p.out_h() * p.out_w();
  const int64_t ximg = (int64_t)p.c * l.xplane;
  // Each accumulator row's offset into one image's packed x: channel c's plane, tap (r, s) at
  // r wx + s; the padding rows read offset 0.
  std::vector<int64_t> xoff((size_t)rows, 0);
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s)
        xoff[((size_t)c * p.r + r) * p.s + s] = (int64_t)c * l.xplane + (int64_t)r * l.wx + s;
  const std::vector<int32_t> xbase = wpair_bases(l);
  weight_by_workers(p, l.combos, rows, l.kp, dw, db, [&](int n0, int n1, float* a, double* bsum) {
    // wpack_image and wpack_dy write every value the blocks read: no clearing needed
    uint16_t* xg = reinterpret_cast<uint16_t*>(aligned_scratch(Scratch::columns, (l.group * ximg + 1) / 2));
    uint32_t* d = reinterpret_cast<uint32_t*>(aligned_scratch(Scratch::staging, (int64_t)l.group * l.p2 * l.kp));
    for (int g0 = n0; g0 < n1; g0 += l.group) {
      const int gn = std::min(l.group, n1 - g0);
      const int64_t F = (int64_t)gn * l.p2;
      for (int g = 0; g < gn; ++g) {
        wpack_image(p, l, x + (g0 + g) * x_img, xg + g * ximg);
        wpack_dy(p, l, dy + (g0 + g) * y_img, F, (int64_t)g * l.p2, d, bsum);
      }
      for (int64_t f0 = 0; f0 < F; f0 += kWChunk) {
        const int64_t f1 = std::min(F, f0 + kWChunk);
        for (int k0 = 0; k0 < l.kp; k0 += 64) {
          const int kw = std::min(64, l.kp - k0), kv = kw / 16, nc = kWAcc / kv;
          for (int64_t i0 = 0; i0 < l.combos; i0 += nc)
            kWBlock[kv - 1](l, d + (int64_t)k0 * F, kw, xg, ximg, xoff.data() + i0, xbase.data(), f0, f1,
                            a + i0 * l.kp + k0, l.kp);
        }
      }
    }
  });
  return true;
#else
  (void)p, (void)x, (void)dy, (void)dw, (void)db;
  return false;
#endif
}

}  // namespace emotune
