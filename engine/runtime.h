// The compute runtime as the front ends see it: the start-up choices (the CPU kernel path, the
// CPU thread count) and their description. The commands reach CPU features and threads only
// through these calls; the kernels' own headers (kernels/cpu/cpu_features.h, kernels/runtime.h)
// stay below the engine.
#pragma once
#include <string>

namespace emotune {

// First thing in main(): picks the CPU kernel path, and may re-execute the program once with
// OPENBLAS_CORETYPE set when OpenBLAS chose kernels weaker than the CPU supports
// (kernels/cpu/cpu_features.h says why and how to override it).
void runtime_select_cpu_path(int argc, char** argv);
// The CPU kernels' thread count: OpenMP's default team (OMP_NUM_THREADS, else the cores), or
// `n`; OpenBLAS always single-threaded inside the OpenMP team (kernels/runtime.h).
void runtime_init_threads();
void runtime_set_threads(int n);
// The precision of the CPU conv and dense products (kernels/runtime.h says what bf16 keeps in
// fp32): "fp32", "bf16" (an error where the CPU lacks AVX512-BF16) or "auto" (bf16 where the CPU
// has it, else fp32). Returns the precision chosen, "fp32" or "bf16". Throws on another word.
std::string runtime_set_precision(const std::string& name);
std::string runtime_precision();  // "fp32" | "bf16"
// What this CPU's bf16 path is: "avx512-bf16", or "none" (then auto means fp32).
std::string runtime_bf16_path();

// The CPU path in use, a few "key: value" lines (emotune --version --verbose).
std::string runtime_describe();

}  // namespace emotune
