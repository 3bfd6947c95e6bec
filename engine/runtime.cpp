#include "engine/runtime.h"

#include "base/error.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/runtime.h"

namespace emotune {

void runtime_select_cpu_path(int argc, char** argv) { cpu_path_init(argc, argv); }
void runtime_init_threads() { cpu_threads_init(); }
void runtime_set_threads(int n) { set_cpu_threads(n); }

std::string runtime_set_precision(const std::string& name) {
  if (name != "fp32" && name != "bf16" && name != "auto")
    throw Error("precision: unknown value '" + name + "' (fp32, bf16 or auto)");
  const bool bf16 = name == "bf16" || (name == "auto" && cpu_bf16_available());
  set_cpu_precision(bf16 ? Precision::bf16 : Precision::fp32);
  return runtime_precision();
}

std::string runtime_precision() { return cpu_precision() == Precision::bf16 ? "bf16" : "fp32"; }

std::string runtime_bf16_path() { return cpu_bf16_available() ? "avx512-bf16" : "none"; }

std::string runtime_describe() {
  return cpu_path_describe(cpu_path_current()) + "precision: " + runtime_precision() +
         " (bf16 path on this CPU: " + runtime_bf16_path() + "; amx: not implemented yet)\n";
}

}  // namespace emotune
