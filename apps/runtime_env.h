// The runtime settings (engine/runtime.h) as the environment gives them. The one place that reads
// EMOTUNE_GRAPH, EMOTUNE_TRAIN_CONV, EMOTUNE_CUDA_SYNC, EMOTUNE_CONV_TUNE, OPENBLAS_CORETYPE,
// EMOTUNE_BLAS_REEXEC, EMOTUNE_CPU_PATH and EMOTUNE_CPU_TEST_CORE: nothing below apps/ calls getenv
// (scripts/deps.py checks it). emotune's main, the test main and the bench and tool programs call
// it first thing, so that every one of them honours the same variables in the same way.
#pragma once
#include "engine/runtime.h"

namespace emotune {

// Unset variables keep the struct's defaults. Values mean what they meant when each part read its
// own variable: an empty EMOTUNE_TRAIN_CONV is auto; EMOTUNE_CUDA_SYNC is off when empty or "0";
// EMOTUNE_CONV_TUNE is on unless it is "0"; an empty EMOTUNE_GRAPH is kept, and refused.
RuntimeSettings runtime_settings_from_env();

// First thing in main(): the settings from the environment, the CPU path chosen (with
// `select_cpu_path`; it may re-execute the program once) and the rest configured. On a value
// runtime_configure refuses, prints "<program>: error: <why>" to stderr and exits with 1.
void runtime_start_from_env(const char* program, char** argv, bool select_cpu_path = true);

}  // namespace emotune
