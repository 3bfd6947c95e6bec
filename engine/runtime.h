// The compute runtime as the front ends see it: the start-up choices (the runtime settings, the
// CPU kernel path, the CPU thread count) and their description. The commands reach CPU features and threads only
// through these calls; the kernels' own headers (kernels/cpu/cpu_features.h, kernels/runtime.h)
// stay below the engine.
#pragma once
#include <string>

namespace emotune {

// The process-wide settings of the engine and the kernels, one object: built once in main (from the
// environment by apps/runtime_env.h, the only reader of these variables), given to
// runtime_select_cpu_path and runtime_configure, and from there handed to each part at its own
// level. The names in brackets are the environment variables (docs/architecture.md, "Runtime
// settings"). Each field holds the value as given; runtime_configure checks it.
struct RuntimeSettings {
  // The network load_model gives a CPU model (EMOTUNE_GRAPH): "inference" (the compiled
  // InferenceGraph, layers/inference.h) or "training" (the modules, as training runs them).
  std::string graph = "inference";
  // The conv algorithm of CPU training (EMOTUNE_TRAIN_CONV): auto, im2col, winograd (F(2x2)) or
  // winograd4 (F(4x4)); kernels/runtime.h, TrainConvMode. In bf16 only auto takes the direct bf16
  // forms (kernels/cpu/conv2d_bf16_direct.h); a named one runs as named.
  std::string train_conv = "auto";
  // CUDA: synchronise after every kernel launch (EMOTUNE_CUDA_SYNC, for debugging), and autotune
  // the conv tiles (EMOTUNE_CONV_TUNE; false: the heuristic). kernels/runtime.h, CudaSettings.
  bool cuda_sync = false;
  bool cuda_conv_tune = true;
  // The CPU path's inputs (kernels/cpu/cpu_features.h), empty when unset: OPENBLAS_CORETYPE,
  // EMOTUNE_BLAS_REEXEC (the re-exec's marker), EMOTUNE_CPU_PATH (generic: no re-exec),
  // EMOTUNE_CPU_TEST_CORE (tests: decide as if OpenBLAS had chosen this core).
  std::string openblas_coretype;
  std::string blas_reexec_marker;
  std::string cpu_path;
  std::string cpu_test_core;
  // OMP_NUM_THREADS was set: the user chose the thread count, and no front end's rule overrides it.
  bool user_threads = false;
};

// First thing in main(): picks the CPU kernel path from `s`, and may re-execute the program once
// with OPENBLAS_CORETYPE set when OpenBLAS chose kernels weaker than the CPU supports
// (kernels/cpu/cpu_features.h says why and how to override it).
void runtime_select_cpu_path(const RuntimeSettings& s, char** argv);
// Checks every field (an Error naming the variable and its allowed values) and hands each part its
// value: the CPU training conv mode and the CUDA backend's settings (kernels/runtime.h); the
// layers read runtime_settings(). Nothing is changed when it throws. Call before the work starts;
// may be called again (the tests do).
void runtime_configure(const RuntimeSettings& s);
// The settings in force: the defaults above until runtime_configure.
const RuntimeSettings& runtime_settings();
// The CPU kernels' thread count: OpenMP's default team (OMP_NUM_THREADS, else the cores), or
// `n`; OpenBLAS always single-threaded inside the OpenMP team (kernels/runtime.h).
void runtime_init_threads();
void runtime_set_threads(int n);

// The threading rule of every front end, written once (unless the user set OMP_NUM_THREADS,
// RuntimeSettings::user_threads, which always wins):
//   batch: every other command (train, evaluate, calibrate, predict, recommend, dataset, export):
//          OpenMP's default team, all cores, for one job at a time
//   serve: one thread per request: the --workers run requests side by side, so the parallelism
//          is theirs (an OpenMP team and OpenBLAS' pool shared by the workers would be fought over)
//   watch: one thread: the per-frame network runs beside FFmpeg's decoder and encoder threads and
//          the face detector (the watch figures in docs/benchmarks.md were measured this way)
// OpenMP's thread count is per thread: main applies the rule for the process, and serve's worker
// threads apply it again for themselves (runtime_apply_thread_rule on each).
enum class FrontEnd { batch, serve, watch };
FrontEnd front_end_of(const char* command);  // "serve" -> serve, "watch" -> watch, else batch
void runtime_apply_thread_rule(FrontEnd f);
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
