// The emotune subcommands. Each cmd_<name>.cpp adds its subcommand to the CLI11 app; main.cpp
// calls them in order. A command reports failure by throwing emotune::Error (main prints
// "emotune <cmd>: <message>" and exits 1) or returning a non-zero code through cli_exit_code().
#pragma once
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "apps/pipeline/paths.h"
#include "apps/pipeline/pipeline.h"

namespace emotune {

struct TrainConfig;

void add_train_command(CLI::App& app);
void add_evaluate_command(CLI::App& app);
void add_calibrate_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_recommend_command(CLI::App& app);
void add_dataset_command(CLI::App& app);
void add_watch_command(CLI::App& app);
void add_export_command(CLI::App& app);
void add_serve_command(CLI::App& app);

// cmd_version.cpp: "emotune 0.1 (commit abc1234)"; the commit is the one CMake configured at.
inline constexpr const char* kEmotuneVersion = "0.1";
std::string version_string();
std::string version_commit();
// `emotune --version --verbose`: prints version, build and CPU path; true when it did.
bool print_version_if_asked(int argc, char** argv);

// The options of every command that reads faces (predict, recommend, watch, serve), declared
// once: --model, --device (not for serve: CPU workers), --margin, --detector hog|haar|lbp,
// --align landmarks|none (docs/faces.md) and --unsure-below (apps/pipeline/pipeline.h).
struct FaceOptions {
  std::string model = kDefaultModel;
  std::string device = "cpu";
  double margin = kDefaultFaceMargin;
  std::string detector = detector_name(kDefaultDetector);
  std::string align = align_name(kDefaultAlign);
  double unsure_below = kDefaultUnsureBelow;
};
void add_face_options(CLI::App* cmd, FaceOptions& options, bool with_device = true);
// The pipeline the options describe, the model path resolved (apps/pipeline/paths.h); detect
// false: --no-detect; listener: look for the listener's face (recommend).
std::unique_ptr<EmotionPipeline> make_pipeline(const FaceOptions& options, bool detect, bool listener);

// --data (required), --format, --labels, --ferplus and --skip-bad, as evaluate and calibrate take
// them, into the fields of `data` that load_labelled_split reads (apps/train/trainer.h).
void add_data_options(CLI::App* cmd, TrainConfig& data);

// Set by a command that finished but must exit non-zero (e.g. no face found).
int& cli_exit_code();

}  // namespace emotune
