// `emotune export --model M.safetensors --format onnx --out M.onnx`: writes the model in another
// framework's format (ONNX only, for now; apps/export/onnx.h describes the file). The write is
// atomic: a failed or killed export leaves any previous file at --out intact.
#pragma once
#include <ostream>
#include <string>

namespace emotune {

struct ExportOptions {
  std::string model;
  std::string format = "onnx";
  std::string out;
};

// Throws emotune::Error for an unreadable model, an unknown format or an unwritable --out.
void run_export(const ExportOptions& o, std::ostream& log);

}  // namespace emotune
