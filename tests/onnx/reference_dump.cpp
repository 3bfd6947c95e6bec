// emotune's side of the ONNX parity check (tests/onnx/run.sh): reads the first N faces of one
// split (PublicTest) of FER-2013 (any format load_dataset reads: the packed .u8.xz, the CSV),
// runs them through predict_probabilities (the function `emotune predict` uses) and writes a
// little binary file per model for check_onnx.py:
//   int32 n, int32 c, uint8 pixels[n][2304], float32 probabilities[n][c]   (little-endian)
// The raw pixels go out, not the network inputs, so that the Python side applies the
// preprocessing from the ONNX metadata itself and the metadata is checked too.
//   onnx_reference_dump DATA SPLIT N MODEL.safetensors OUT.bin [MODEL OUT ...]
// (several models share one decode of the data set, the slow part on 2 cores)
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "base/error.h"
#include "base/preprocess.h"
#include "datasets/dataset.h"
#include "engine/checkpoint.h"
#include "kernels/cpu/cpu_features.h"
#include "layers/model.h"

using namespace emotune;

namespace {
void dump_model(const Dataset& d, int n, const std::string& model_path, const std::string& out_path) {
  LoadedModel model = load_model(model_path);
  const int s = model.info.preprocess.size, c = (int)model.info.classes.size();
  if (s * s != kFacePixels) throw Error(model_path + ": preprocess.size is not 48");
  const uint8_t* pixels = d.image(0);
  std::string out;
  auto put = [&](const void* p, size_t bytes) { out.append((const char*)p, bytes); };
  put(&n, 4);
  put(&c, 4);
  put(pixels, (size_t)n * s * s);
  std::vector<float> input((size_t)s * s);
  for (int i = 0; i < n; ++i) {
    model.info.preprocess.apply(pixels + (size_t)i * s * s, input.data());
    // One face per call, as `emotune predict` runs: batch-1 shapes are what the app ships.
    auto p = predict_probabilities(model, input.data(), 1);
    put(p[0].data(), sizeof(float) * c);
  }
  write_file_atomic(out_path, out);
}
}  // namespace

int main(int argc, char** argv) {
  emotune::runtime_start_from_env("onnx_reference_dump", argv);  // apps/runtime_env.h
  if (argc < 6 || (argc - 4) % 2 != 0) {
    std::fprintf(stderr, "usage: %s DATA SPLIT N MODEL OUT [MODEL OUT ...]\n", argv[0]);
    return 2;
  }
  try {
    const std::string data = argv[1];
    Split split;
    if (!split_from_name(argv[2], &split)) throw Error(std::string("unknown split ") + argv[2]);
    const int n = std::atoi(argv[3]);
    if (n < 1) throw Error(std::string("N must be >= 1, got ") + argv[3]);
    LoadOptions lo;
    lo.splits = {split};
    const Dataset d = load_dataset(data, lo);
    if (d.size() < (size_t)n) throw Error(data + ": only " + std::to_string(d.size()) + " " + argv[2] + " faces");
    for (int a = 4; a < argc; a += 2) dump_model(d, n, argv[a], argv[a + 1]);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "onnx_reference_dump: error: %s\n", e.what());
    return 1;
  }
  return 0;
}
