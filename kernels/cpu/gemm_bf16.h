// BF16 products with fp32 accumulation on CPUs with AVX512-BF16 (vdpbf16ps):
//   C [m, n] = beta * C + op(A) [m, k] * op(B) [k, n]
// fp32 operands in, fp32 result out: the operands are rounded to bfloat16 (round to nearest even)
// while they are packed, each pair of products is added into fp32 accumulators (vdpbf16ps:
// lane j += a[2j] * b[2j] + a[2j+1] * b[2j+1], products exact, sums rounded to fp32). The
// conversions happen in the packing the kernel needs anyway, so callers keep fp32 tensors: master
// weights, activations and gradients stay fp32 (the mixed-precision rule of docs/precision.md).
//
// Error bound (tests/test_gemm_bf16.cpp): with u = 2^-8 (bfloat16 keeps 8 significant bits, so
// rounding to nearest moves a value by at most 2^-8 of itself) and fp32 sums (2^-24 per addition),
//   |C - C_exact| <= ((1 + u)^2 - 1 + k * 2^-24) * sum_k |a_ik| |b_kj|   (+ |beta C| * 2^-24)
// and values below fp32's normal range (2^-126) may be flushed to zero by the instruction.
//
// Two kernels, chosen by cpuid (gemm_bf16_kernel): AMX tiles (TDPBF16PS: a 16 x 16 fp32 tile += a
// 16 x 32 bf16 tile times a 32 x 16 one) where the CPU has AMX-BF16 and Linux grants the process
// the tile state (arch_prctl(ARCH_REQ_XCOMP_PERM, XTILEDATA)), else vdpbf16ps on ZMM registers.
// Both sum each pair of products into fp32 in k order, so the bound above holds for both.
//
// Layout: the blocking of GotoBLAS: B in blocks of kKcPairs pairs along k by kNc columns, packed
// as panels of 32 columns ([pairs][32] of 32-bit bf16 pairs); A in panels of 8 rows ([pairs][8]);
// avx512-bf16: an 8 x 32 block of C in 16 ZMM accumulators; amx: A's panels re-laid as 16-row
// tiles ([16 rows][16 pairs]), B's panels read as two 16-column tiles (already the pair-interleaved
// form AMX wants), a 32 x 32 block of C in four accumulator tiles. Each C element is summed by one thread in a fixed
// order, so results do not depend on the thread count.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace emotune {

// True when the CPU and the OS support AVX512-BF16 (and AVX-512 F/BW/VL): gemm_bf16 may run.
bool gemm_bf16_available();

// The kernel that runs the products. The default is the fastest this CPU and OS allow: amx, else
// avx512_bf16, else none.
enum class Bf16Kernel { none, avx512_bf16, amx };
const char* bf16_kernel_name(Bf16Kernel k);  // "none" | "avx512-bf16" | "amx"
// The kernel named "amx" or "avx512-bf16" (tests' and benchmarks' --bf16-kernel); Error otherwise.
Bf16Kernel bf16_kernel_from_name(const std::string& name);
Bf16Kernel gemm_bf16_kernel();
// True when the CPU has AMX-BF16, the OS saves the tile state and Linux granted its use to this
// process (asked once); otherwise false, with the reason in *why_not when given.
bool gemm_bf16_amx_available(std::string* why_not = nullptr);
// Tests and benchmarks: run on this kernel from now on (the process-wide choice). Throws when the
// machine cannot run it.
void set_gemm_bf16_kernel(Bf16Kernel k);

// op(A): a is [m, k] row-major with leading dimension lda, or [k, m] when trans_a.
// op(B): b is [k, n] row-major with leading dimension ldb, or [n, k] when trans_b.
// beta == 0: C is written without being read. Throws when !gemm_bf16_available().
// Threads: an OpenMP team over column blocks when called outside a parallel region and the
// product is large; single-threaded inside one (the conv paths split the batch themselves).
void gemm_bf16(int m, int n, int k, const float* a, int64_t lda, bool trans_a, const float* b, int64_t ldb,
               bool trans_b, float beta, float* c, int64_t ldc);

// The same with A given as gemm_packed_a's fp32 panels (kernels/cpu/gemm_packed.h): Winograd's
// transformed filters. beta is 0.
void gemm_bf16_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c,
                        int64_t ldc);

}  // namespace emotune

namespace emotune {

// A matrix used by many products (an inference graph's filters), rounded to bf16 and laid out the
// way the kernel in use reads it, once: gemm_bf16_packed_a otherwise does this on every call.
struct Bf16PackedA {
  Bf16Kernel kernel = Bf16Kernel::none;  // the layout is this kernel's
  int m = 0, k = 0;
  std::vector<int64_t> offsets;  // of each block of rows and k, in the order the product visits them
  std::vector<uint32_t> data;    // bf16 pairs
};
// From gemm_packed_a's fp32 panels of an m x k matrix, for the kernel in use now.
Bf16PackedA gemm_bf16_prepare_a(int m, int k, const float* ap);
// C [m, n] = A B, B [k, n] row-major: bit for bit gemm_bf16_packed_a on the panels A came from.
// Throws when the process's kernel is no longer the one A was prepared for.
void gemm_bf16_prepared_a(const Bf16PackedA& a, int n, const float* b, int64_t ldb, float* c, int64_t ldc);

}  // namespace emotune
