#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <atomic>
#include <string>

#include "base/error.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/cpu/gemm_packed.h"
#include "kernels/runtime.h"

namespace emotune {

namespace {
std::atomic<Precision> g_precision{Precision::fp32};
}

bool cpu_bf16_available() { return gemm_bf16_available(); }

void set_cpu_precision(Precision p) {
  if (p == Precision::bf16 && !gemm_bf16_available())
    throw Error("precision bf16: this CPU has neither AVX512-BF16 nor AMX-BF16 (use fp32, or auto)");
  g_precision.store(p, std::memory_order_relaxed);
}

Precision cpu_precision() { return g_precision.load(std::memory_order_relaxed); }

std::string cpu_bf16_kernel() { return bf16_kernel_name(gemm_bf16_kernel()); }

std::string cpu_bf16_amx_why_not() {
  std::string why;
  return gemm_bf16_amx_available(&why) ? std::string() : why;
}

bool cpu_gemm_runs_bf16(int64_t k) { return cpu_precision() == Precision::bf16 && k >= kBf16MinReduction; }

void cpu_gemm(bool trans_a, bool trans_b, int m, int n, int k, const float* a, int64_t lda, const float* b,
              int64_t ldb, float beta, float* c, int64_t ldc) {
  if (cpu_gemm_runs_bf16(k)) return gemm_bf16(m, n, k, a, lda, trans_a, b, ldb, trans_b, beta, c, ldc);
  cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
              a, (int)lda, b, (int)ldb, beta, c, (int)ldc);
}

void cpu_gemm_packed_a(int m, int n, int k, const float* ap, const float* b, int64_t ldb, float* c, int64_t ldc,
                       const Bf16PackedA* prepared) {
  if (cpu_gemm_runs_bf16(k)) {
    if (prepared && prepared->kernel == gemm_bf16_kernel()) return gemm_bf16_prepared_a(*prepared, n, b, ldb, c, ldc);
    return gemm_bf16_packed_a(m, n, k, ap, b, ldb, c, ldc);
  }
  gemm_packed_a(m, n, k, ap, b, ldb, c, ldc);
}

}  // namespace emotune
