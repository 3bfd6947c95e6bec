// emotune: train and evaluate the emotion CNN, name the emotion in a photo, recommend music.

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>

#include "apps/commands.h"
#include "apps/runtime_env.h"
#include "base/error.h"
#include "engine/runtime.h"

int main(int argc, char** argv) {
  // The runtime settings from the environment (apps/runtime_env.h), first: choosing the CPU path
  // may re-exec once with OPENBLAS_CORETYPE set. A wrong value ends here, with the variable named.
  emotune::runtime_start_from_env("emotune", argv);
  if (emotune::print_version_if_asked(argc, argv)) return 0;
  emotune::runtime_init_threads();
  emotune::runtime_apply_thread_rule(emotune::front_end_of(argc >= 2 ? argv[1] : nullptr));  // engine/runtime.h
  CLI::App app{"emotune: facial emotion recognition on FER-2013, and music for the mood"};
  app.require_subcommand(1);
  app.set_version_flag("--version", emotune::version_string());
  emotune::add_train_command(app);
  emotune::add_evaluate_command(app);
  emotune::add_calibrate_command(app);
  emotune::add_predict_command(app);
  emotune::add_recommend_command(app);
  emotune::add_dataset_command(app);
  emotune::add_export_command(app);
  emotune::add_watch_command(app);
  emotune::add_serve_command(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const std::exception& e) {
    // Commands run inside parse() callbacks; every user-facing failure lands here.
    std::string cmd = app.get_subcommands().empty() ? "" : " " + app.get_subcommands()[0]->get_name();
    std::fprintf(stderr, "emotune%s: error: %s\n", cmd.c_str(), e.what());
    return 1;
  }
  return emotune::cli_exit_code();
}
