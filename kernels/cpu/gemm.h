// The products of the CPU conv and dense kernels, in the process's precision (kernels/runtime.h,
// set_cpu_precision): OpenBLAS sgemm / gemm_packed_a in fp32, gemm_bf16 in bf16. One switch, so
// that every product of a training step runs at the precision asked for.
#pragma once
#include <cstdint>

namespace emotune {

struct Bf16PackedA;  // kernels/cpu/gemm_bf16.h

// True when a product whose reduction is k values long runs in bf16 now: precision bf16 and
// k >= kBf16MinReduction (kernels/runtime.h). The one rule every bf16 path follows.
bool cpu_gemm_runs_bf16(int64_t k);

// C [m, n] = beta * C + op(A) * op(B), row-major, as cblas_sgemm with alpha 1.
void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta, float* c, int64_t ldc);

// gemm_packed_a (kernels/cpu/gemm_packed.h) or its bf16 twin. `prepared` (may be null): the same A
// made bf16 once (gemm_bf16_prepare_a), used when the product runs bf16 on the kernel it was made
// for; the result is the same bit for bit.
void cpu_gemm_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc,
                       const Bf16PackedA* prepared = nullptr);

}  // namespace emotune
