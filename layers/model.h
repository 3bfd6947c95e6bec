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
};

struct LoadedModel {
  std::shared_ptr<Module> net;
  ModelInfo info;
  Device device = Device::cpu;
  // On the CPU: the network compiled into the inference graph (layers/inference.h: BatchNorm
  // folded, fused epilogues, Winograd), which predict_probabilities runs instead of `net`.
  // Null on a GPU, or when $EMOTUNE_GRAPH=training asks for the training graph.
  std::shared_ptr<const InferenceGraph> graph;
};

// Loads a safetensors checkpoint written by `emotune train`; throws emotune::Error naming the file
// and the problem (not a checkpoint, unknown architecture, missing/mismatched tensor, ...).
LoadedModel load_model(const std::string& path, Device device = Device::cpu);

// Class probabilities (softmax) for n preprocessed inputs [n, 1, size, size] on the host.
// Runs in eval mode without gradients (through model.graph when there is one). Returns n rows of
// classes.size() probabilities.
std::vector<std::vector<float>> predict_probabilities(const LoadedModel& model, const float* inputs, int n);

}  // namespace emotune
