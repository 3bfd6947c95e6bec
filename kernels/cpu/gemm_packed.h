// A small GEMM for a constant left operand, used by Winograd (conv2d_infer.cpp):
//   C [M, N] = A [M, K] * B [K, N]
// A is packed once, at load time, in panels of 8 rows, [ceil(M/8)][K][8] (zero rows past M), so
// the inner loop reads it contiguously; B and C are plain row-major with leading dimensions. B is
// not copied: its panels of 32 columns are read in place (K rows of 128 bytes, which stay in the
// first- and second-level caches while every panel of A passes over them).
// The inner kernel keeps an 8 x 32 block of C in 16 AVX-512 registers; CPUs without AVX-512 run
// the same loops in plain C++ (compiled for AVX2 + FMA and for baseline x86-64, picked by the
// loader). OpenBLAS would pack A again on every call and B as well: for Winograd's many small
// products that copying cost as much as the arithmetic (perf, docs/benchmarks.md).
#pragma once
#include <cstdint>

namespace emotune {

constexpr int kPackRows = 8;

inline int64_t packed_a_size(int m, int k) { return (int64_t)((m + kPackRows - 1) / kPackRows) * kPackRows * k; }

// a: row-major [m, k] with leading dimension lda -> ap (packed_a_size(m, k) floats).
void pack_a(int m, int k, const float* a, int64_t lda, float* ap);

// c [m, n] (leading dimension ldc) = ap (packed [m, k]) * b [k, n] (leading dimension ldb).
void gemm_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc);

// The portable loops alone, whatever the CPU (tests compare the two paths).
void gemm_packed_a_portable(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c,
                            int64_t ldc);

// "avx512" or "portable": what gemm_packed_a runs on this CPU.
const char* gemm_packed_a_path();

}  // namespace emotune
