// The AVX-512 pieces the bf16 kernels share (kernels/cpu/gemm_bf16.cpp, conv2d_bf16_direct.cpp): the target
// they compile for, lane masks, and the rounding of two fp32 vectors into the 32-bit bf16 pairs
// that vdpbf16ps and AMX read. Call only where gemm_bf16_available() (AVX512-BF16 present).
#pragma once
#include <algorithm>
#include <cstdint>

#if defined(__x86_64__)
#include <immintrin.h>

#define EMOTUNE_BF16_TARGET __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,fma")))

namespace emotune::bf16 {

// The first n of 16 lanes (n <= 0: none, n >= 16: all).
inline __mmask16 lanes_mask(int n) { return n >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << std::max(n, 0)) - 1); }

// Lane i: the pair (lo[i], hi[i]) rounded to bfloat16 (to nearest, ties to even), lo in the low
// 16 bits.
EMOTUNE_BF16_TARGET inline __m512i pairs(__m512 lo, __m512 hi) {
  const __m512i a = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(lo));
  const __m512i b = _mm512_cvtepu16_epi32((__m256i)_mm512_cvtneps_pbh(hi));
  return _mm512_or_si512(a, _mm512_slli_epi32(b, 16));
}

}  // namespace emotune::bf16
#endif
