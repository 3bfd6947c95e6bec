// The emotune subcommands. Each cmd_<name>.cpp adds its subcommand to the CLI11 app; main.cpp
// calls them in order. A command reports failure by throwing emotune::Error (main prints
// "emotune <cmd>: <message>" and exits 1) or returning a non-zero code through cli_exit_code().
#pragma once
#include <CLI/CLI.hpp>

namespace emotune {

void add_train_command(CLI::App& app);
void add_evaluate_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_recommend_command(CLI::App& app);
void add_dataset_command(CLI::App& app);
void add_watch_command(CLI::App& app);
void add_export_command(CLI::App& app);

// cmd_version.cpp: "emotune 0.1 (commit abc1234)"; the commit is the one CMake configured at.
inline constexpr const char* kEmotuneVersion = "0.1";
std::string version_string();
std::string version_commit();
// `emotune --version --verbose`: prints version, build and CPU path; true when it did.
bool print_version_if_asked(int argc, char** argv);

// Set by a command that finished but must exit non-zero (e.g. no face found).
int& cli_exit_code();

}  // namespace emotune
