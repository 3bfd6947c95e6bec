#include "apps/cmd_export.h"

#include <iostream>
#include <memory>

#include "apps/commands.h"
#include "apps/export/onnx.h"
#include "base/error.h"
#include "engine/checkpoint.h"
#include "layers/model.h"

namespace emotune {

void run_export(const ExportOptions& o, std::ostream& log) {
  if (o.format != "onnx") throw Error("--format '" + o.format + "' is not supported (known: onnx)");
  if (o.out.empty()) throw Error("--out is empty");
  const LoadedModel model = load_model(o.model, Device::cpu);
  const std::string bytes =
      onnx_export_model(model, {{"emotune_version", kEmotuneVersion}, {"emotune_commit", version_commit()}});
  try {
    write_file_atomic(o.out, bytes);
  } catch (const Error& e) {
    throw Error("cannot write --out " + o.out + ": " + e.what());
  }
  log << "wrote " << o.out << ": ONNX opset " << kOnnxOpset << ", " << model.info.arch << ", "
      << model.info.classes.size() << " classes, " << bytes.size() << " bytes\n";
}

void add_export_command(CLI::App& app) {
  auto opt = std::make_shared<ExportOptions>();
  auto* cmd = app.add_subcommand("export", "write a model in another format (ONNX), see docs/onnx.md");
  cmd->add_option("--model", opt->model, "checkpoint (safetensors)")->required();
  cmd->add_option("--format", opt->format, "output format: onnx")->capture_default_str();
  cmd->add_option("--out", opt->out, "output file")->required();
  cmd->callback([opt] { run_export(*opt, std::cout); });
}

}  // namespace emotune
