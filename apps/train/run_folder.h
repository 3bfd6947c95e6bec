// The run folder of `emotune train` and the files in it (what each holds: apps/train/trainer.h).
#pragma once
#include <string>

#include "apps/train/config.h"

namespace emotune {

struct RunPaths {
  std::string dir;
  std::string config, metrics, curves, confusion, val_metrics;  // config.json, metrics.csv, ...
  std::string test_metrics;  // with val_fraction > 0: val_split's figures, measured once at the end
  std::string last, best, model;                                // the three .safetensors
};

RunPaths run_paths(const std::string& dir);

// `resume_dir` empty: a new run in <out>/<name>, refused if that folder already holds a run.
// Otherwise the folder to continue. Creates the folder, removes the temporary files a killed run
// left in it, and writes the resolved config.json.
RunPaths open_run_folder(const TrainConfig& c, const std::string& resume_dir);

}  // namespace emotune
