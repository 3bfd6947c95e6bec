#include "apps/runtime_env.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

namespace emotune {

namespace {

// Empty when unset: the CPU path's inputs treat an empty value as none (kernels/cpu/cpu_features.h).
std::string env_or_empty(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

}  // namespace

RuntimeSettings runtime_settings_from_env() {
  RuntimeSettings s;
  if (const char* v = std::getenv("EMOTUNE_GRAPH")) s.graph = v;
  if (const char* v = std::getenv("EMOTUNE_TRAIN_CONV"); v && *v) s.train_conv = v;
  if (const char* v = std::getenv("EMOTUNE_CUDA_SYNC")) s.cuda_sync = *v && std::strcmp(v, "0") != 0;
  if (const char* v = std::getenv("EMOTUNE_CONV_TUNE"); v && *v) s.cuda_conv_tune = std::strcmp(v, "0") != 0;
  s.openblas_coretype = env_or_empty("OPENBLAS_CORETYPE");
  s.blas_reexec_marker = env_or_empty("EMOTUNE_BLAS_REEXEC");
  s.cpu_path = env_or_empty("EMOTUNE_CPU_PATH");
  s.cpu_test_core = env_or_empty("EMOTUNE_CPU_TEST_CORE");
  s.user_threads = std::getenv("OMP_NUM_THREADS") != nullptr;
  return s;
}

void runtime_start_from_env(const char* program, char** argv, bool select_cpu_path) {
  const RuntimeSettings s = runtime_settings_from_env();
  if (select_cpu_path) runtime_select_cpu_path(s, argv);
  try {
    runtime_configure(s);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s: error: %s\n", program, e.what());
    std::exit(1);
  }
}

}  // namespace emotune
