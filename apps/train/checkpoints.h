// The checkpoints of a training run, all safetensors carrying the model metadata (format, arch,
// classes, preprocess, config):
//   best.safetensors   weights and buffers (f32) of the best validation epoch; its validation
//                      metrics and epoch in the metadata, and also in val_metrics.json
//   last.safetensors   weights, buffers and optimizer state ("optim.<param>.<slot>", f32) after
//                      the last finished epoch, and the metadata "train_state": everything
//                      --resume needs (TrainState, the optimizer's step count, the schedule state)
//   model.safetensors  the shipped form, in save_dtype: best.safetensors (export_epoch "best"),
//                      or the weights and buffers of last.safetensors ("last": a recipe reported
//                      at its last epoch, or a validation split that must not choose the epoch)
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "apps/train/config.h"
#include "apps/train/history.h"
#include "apps/train/metrics.h"
#include "apps/train/run_folder.h"
#include "base/preprocess.h"
#include "engine/optim.h"
#include "engine/schedule.h"
#include "layers/module.h"

namespace emotune {

// Where a run stands between epochs: what last.safetensors keeps besides tensors.
struct TrainState {
  int epochs_done = 0;
  int64_t step = 0;          // batches trained so far; dropout masks depend on it
  double best_val_acc = -1;  // below any accuracy, so the first epoch is the best so far
  int best_epoch = -1;       // 0-based
  std::vector<EpochRecord> history;
};

using ModelMetadata = std::map<std::string, std::string>;
ModelMetadata model_metadata(const TrainConfig& c, const Preprocess& pre);

// best.safetensors and val_metrics.json for `epoch` (0-based).
void save_best_checkpoint(const RunPaths& p, Module& net, ModelMetadata meta, const Metrics& val,
                          const std::vector<std::string>& class_names, int epoch);

void save_last_checkpoint(const RunPaths& p, Module& net, const Optimizer& opt, const LrSchedule& schedule,
                          ModelMetadata meta, const TrainState& st);

// Restores the network, the optimizer and the schedule from last.safetensors and returns the
// state to continue from. Throws naming the file when there is none (the run died before its
// first epoch ended) or when it holds another network than `arch`.
TrainState resume_from_last(const RunPaths& p, const std::string& arch, Module& net, Optimizer& opt,
                            LrSchedule& schedule);

// model.safetensors, stored as `save_dtype`: the tensors and metadata of best.safetensors when
// `which` is "best"; when "last", last.safetensors without the optimizer state and the resume
// state, its metadata gaining "epoch" (1-based).
void export_model(const RunPaths& p, const std::string& save_dtype, const std::string& which);

}  // namespace emotune
