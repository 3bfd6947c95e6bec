// The training loop behind `emotune train`: data, network, optimizer, schedule, loader; one
// validation pass per epoch; a run folder with the resolved config, metrics.csv, curves.png,
// confusion.png, last.safetensors (everything needed to resume), best.safetensors (the weights
// of the best validation epoch) and model.safetensors (best, exported as save_dtype).
//
// Resuming is exact on the CPU: a checkpoint is written at each epoch's end and everything random
// is a function of (seed, epoch, step) — loader order and augmentation (seed, epoch, position),
// dropout masks (seed, step) — so a run killed in epoch e and resumed recomputes epoch e exactly
// as the uninterrupted run did. On the GPU the same holds except for the order of floating-point
// sums in kernels that use atomics (see docs/architecture.md).
//
// The steps of run_training, in order: open_run_folder (run_folder.h); the data, the loader, the
// network, the optimizer and the schedule; resume_from_last (checkpoints.h) when resuming; then per
// epoch: the batch loop, the validation pass, best/last checkpoints (checkpoints.h), metrics.csv
// and curves (history.h); finally export_model, and the exported model's temperature, fitted on
// one seeded half of the validation split (calibration.h). The learning rate has one owner, the
// schedule: config.lr is its base, and each epoch's lr(epoch) is what every step uses and records.
#pragma once
#include <string>

#include "apps/train/config.h"
#include "datasets/dataset.h"

namespace emotune {

struct TrainResult {
  std::string run_dir;
  double best_val_accuracy = 0;
  int best_epoch = -1;  // 0-based
  int epochs_done = 0;
  double test_accuracy = -1;  // val_fraction > 0: val_split's accuracy, measured once at the end; else -1
};

// `resume_dir`: empty for a new run, else the run folder to continue (its config.json is used;
// `overrides` may only change epochs, device and threads).
TrainResult run_training(const TrainConfig& config, const std::string& resume_dir = "");

// The data of the given splits with the labels the config asks for (FER-2013 or FER+), after the
// optional seeded subset. Shared with `evaluate`.
Dataset load_labelled_split(const TrainConfig& config, const std::string& split, int64_t limit);

}  // namespace emotune
