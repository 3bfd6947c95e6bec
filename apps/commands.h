// The emotune subcommands. Each cmd_<name>.cpp adds its subcommand to the CLI11 app; main.cpp
// calls them in order. A command reports failure by throwing emotune::Error (main prints
// "emotune <cmd>: <message>" and exits 1) or returning a non-zero code through cli_exit_code().
#pragma once
#include <string>

#include <CLI/CLI.hpp>

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

// --detector hog|haar|lbp and --align landmarks|none, as predict and recommend take them
// (docs/faces.md); the strings keep their defaults unless the user sets them.
void add_face_options(CLI::App* cmd, std::string& detector, std::string& align);

// --unsure-below P, as predict, recommend, watch and serve take it (apps/pipeline/pipeline.h
// kDefaultUnsureBelow; checked to lie in [0, 1]).
void add_unsure_option(CLI::App* cmd, double& unsure_below);

// --data (required), --format, --labels, --ferplus and --skip-bad, as evaluate and calibrate take
// them, into the fields of `data` that load_labelled_split reads (apps/train/trainer.h).
void add_data_options(CLI::App* cmd, TrainConfig& data);

// Set by a command that finished but must exit non-zero (e.g. no face found).
int& cli_exit_code();

}  // namespace emotune
