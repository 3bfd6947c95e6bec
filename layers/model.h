// A trained model as the app and evaluate see it: the network, its class names and the
// preprocessing stored with it (checkpoint metadata).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/preprocess.h"
#include "engine/tensor.h"

namespace emotune {

class Module;
class InferenceGraph;

struct ModelInfo {
  std::string arch;                  // "paper" | "vgg" | ...
  std::vector<std::string> classes;  // in output order
  Preprocess preprocess;
  // Temperature scaling (docs/calibration.md): probabilities are softmax(logits / temperature).
  // Metadata "temperature", written by `emotune calibrate` and at the end of `emotune train`;
  // 1 (the network's own softmax) when the file has none.
  double temperature = 1.0;
  std::string calibration;  // metadata "calibration": how the temperature was fitted (JSON), or ""
};

struct LoadedModel {
  std::shared_ptr<Module> net;
  ModelInfo info;
  Device device = Device::cpu;
  // On the CPU: the network compiled into the inference graph (layers/inference.h: BatchNorm
  // folded, fused epilogues, Winograd), which predict_probabilities runs instead of `net`.
  // Null on a GPU, when the runtime settings ask for the training graph (EMOTUNE_GRAPH=training,
  // engine/runtime.h), or when the graph cannot express a layer of the network
  // (InferenceGraph::compile_or_fallback: one warning line).
  std::shared_ptr<const InferenceGraph> graph;
};

// Loads a safetensors checkpoint written by `emotune train`; throws emotune::Error naming the file
// and the problem (not a checkpoint, unknown architecture, missing/mismatched tensor, ...).
LoadedModel load_model(const std::string& path, Device device = Device::cpu);

// Class probabilities softmax(logits / model.info.temperature) for n preprocessed inputs
// [n, 1, size, size] on the host: every front end (predict, recommend, watch, serve) gets its
// probabilities here, so a calibrated model is calibrated everywhere. Runs in eval mode without
// gradients (through model.graph when there is one). Returns n rows of classes.size() probabilities,
// each softmax_row<float> of base/softmax.h (bit for bit predict's softmax of old).
std::vector<std::vector<float>> predict_probabilities(const LoadedModel& model, const float* inputs, int n);

}  // namespace emotune
