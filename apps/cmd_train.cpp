// `emotune train`: every key of the training config (apps/train/config.h) is also a flag;
// precedence: defaults < --config FILE < flags.
#include <deque>
#include <map>

#include "apps/commands.h"
#include "apps/train/config.h"
#include "apps/train/trainer.h"
#include "base/error.h"

namespace emotune {

namespace {

std::string flag_name(const std::string& key) {
  std::string f = key;
  for (char& ch : f)
    if (ch == '_') ch = '-';
  return "--" + f;
}

nlohmann::json parse_flag_value(const ConfigKey& k, const std::string& text) {
  try {
    if (k.type == "string") return text;
    if (k.type == "bool") {
      if (text == "true" || text == "1" || text.empty()) return true;
      if (text == "false" || text == "0") return false;
      throw Error("expected true or false");
    }
    size_t used = 0;
    if (k.type == "float") {
      double v = std::stod(text, &used);
      if (used != text.size()) throw Error("trailing characters");
      return v;
    }
    long long v = std::stoll(text, &used);
    if (used != text.size()) throw Error("trailing characters");
    return v;
  } catch (const std::exception& e) {
    throw Error(flag_name(k.key) + " " + text + ": not a valid " + k.type + " (" + e.what() + ")");
  }
}

// The keys a resumed run may change: how far, where and at which precision it trains (the
// checkpoint's weights and optimizer state are fp32 in every precision), what its curves are drawn
// beside and which epoch it exports. Everything else would make the continued run a different run.
bool resumable_key(const std::string& key) {
  return key == "epochs" || key == "device" || key == "threads" || key == "reference_curve" ||
         key == "export_epoch" || key == "precision";
}

}  // namespace

void add_train_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("train", "train a network on FER-2013 (see configs/*.json)");
  struct State {
    std::string config, resume;
    std::deque<std::string> values;
    std::map<std::string, CLI::Option*> options;
  };
  auto st = std::make_shared<State>();
  cmd->add_option("--config", st->config, "JSON training config (configs/paper.json, ...)");
  cmd->add_option("--resume", st->resume,
                  "continue the run in this folder from its last checkpoint (epochs, device, "
                  "threads, precision, reference curve and exported epoch may be changed by flags; a "
                  "finished run only redraws its curves and exports its model again)");
  for (const auto& k : train_config_keys()) {
    st->values.emplace_back();
    std::string help = k.help + " [" + k.type + "]";
    CLI::Option* o = k.type == "bool" ? cmd->add_flag(flag_name(k.key) + "{true}", st->values.back(), help)
                                      : cmd->add_option(flag_name(k.key), st->values.back(), help);
    st->options[k.key] = o;
  }
  cmd->callback([st]() {
    TrainConfig c;
    if (!st->resume.empty()) {
      c = load_train_config(st->resume + "/config.json");
    } else if (!st->config.empty()) {
      c = load_train_config(st->config);
    }
    nlohmann::json flags = nlohmann::json::object();
    size_t i = 0;
    for (const auto& k : train_config_keys()) {
      const std::string& v = st->values[i++];
      if (st->options[k.key]->count() == 0) continue;
      if (!st->resume.empty() && !resumable_key(k.key))
        throw Error(flag_name(k.key) +
                    " cannot change a resumed run (only --epochs, --device, --threads, --precision, --reference-curve, --export-epoch)");
      flags[k.key] = parse_flag_value(k, v);
    }
    c.apply_json(flags, "command line");
    run_training(c, st->resume);
  });
}

}  // namespace emotune
