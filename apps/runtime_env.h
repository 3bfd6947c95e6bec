// The runtime settings (engine/runtime.h) as the environment gives them. The one place that reads
// EMOTUNE_GRAPH, EMOTUNE_TRAIN_CONV, EMOTUNE_CUDA_SYNC, EMOTUNE_CONV_TUNE, OPENBLAS_CORETYPE,
// EMOTUNE_BLAS_REEXEC, EMOTUNE_CPU_PATH and EMOTUNE_CPU_TEST_CORE: nothing below apps/ calls getenv
// (scripts/deps.py checks it). emotune's main, the test main and the bench and tool programs call
// it first thing, so that every one of them honours the same variables in the same way.
#pragma once
#include "engine/runtime.h"

namespace emotune {

// Unset variables keep the struct's defaults. As before the settings object: an empty
// EMOTUNE_TRAIN_CONV means auto, an empty or "0" EMOTUNE_CUDA_SYNC off, an empty
// EMOTUNE_CONV_TUNE on (only "0" turns it off); an empty EMOTUNE_GRAPH is kept, and refused.
RuntimeSettings runtime_settings_from_env();

// First thing in main(): the settings from the environment, the CPU path chosen (with
// `select_cpu_path`; it may re-execute the program once) and the rest configured. On a value
// runtime_configure refuses, prints "<program>: error: <why>" to stderr and exits with 1.
void runtime_start_from_env(const char* program, char** argv, bool select_cpu_path = true);

}  // namespace emotune
