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
// The CPU path in use, a few "key: value" lines (emotune --version --verbose).
std::string runtime_describe();

}  // namespace emotune
