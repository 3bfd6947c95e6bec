// Runs a test body once per bf16 kernel this machine has (kernels/cpu/gemm_bf16.h), each set
// process-wide in turn; the ones it lacks are reported as skipped with the reason, and the
// default choice is restored afterwards. Used by the gemm_bf16 and direct-convolution tests.
#pragma once
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "kernels/cpu/gemm_bf16.h"
#include "tests/testing.h"

namespace emotune::testing {

template <class F>
void for_each_bf16_kernel(const char* what, F&& body) {
  if (!isa_or_skip(gemm_bf16_available(), "avx512_bf16", what)) return;
  const Bf16Kernel saved = gemm_bf16_kernel();
  std::string why;
  std::vector<Bf16Kernel> kernels{Bf16Kernel::avx512_bf16};
  if (gemm_bf16_amx_available(&why))
    kernels.push_back(Bf16Kernel::amx);
  else
    isa_or_skip(false, ("amx_bf16 (" + why + ")").c_str(), what);
  for (Bf16Kernel k : kernels) {
    set_gemm_bf16_kernel(k);
    INFO("kernel ", std::string(bf16_kernel_name(k)));
    body();
  }
  set_gemm_bf16_kernel(saved);
}

}  // namespace emotune::testing
