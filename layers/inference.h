// The CPU inference graph: a trained network (paper, vgg, or any chain of layers that lower to it)
// rewritten once, at load time, into a few fused steps that run on plain float buffers with no
// autograd and no per-layer allocation. Each layer appends itself through InferenceBuilder (its
// lower_to_graph, layers/module.h); the builder fuses what the rules allow:
//   Conv2d [BatchNorm] [ReLU [BatchNorm]] [Dropout...] [MaxPool2d 2x2]  ->  one conv step
//     a BatchNorm right after the conv is folded into its weights and bias (w*a, (b-mean)*a+beta,
//     a = gamma/sqrt(var+eps)); one after the ReLU (the paper net) becomes the conv's per-channel
//     affine epilogue; the pool is reduced in the epilogue (kernels/conv2d_infer.h)
//   Linear [BatchNorm] [ReLU]                                             ->  one dense step
//   a ReLU or a max-pool nothing absorbs                                  ->  a step of its own
//   Dropout is the identity at inference; Flatten is free (NCHW rows are already contiguous).
// A BatchNorm anywhere else, a layer without a lowering, or a network that does not end in a dense
// step cannot be expressed: compile throws GraphUnsupported naming the layer.
// Each conv step picks its algorithm for its real shape: Winograd F(2x2, 3x3) for 3x3 stride-1
// convolutions with at least kWinogradMinChannels input channels, im2col + sgemm otherwise (the
// first layer, one input channel, is a 9-row GEMM that Winograd cannot shorten).
// Its output equals the training graph's eval-mode forward within float32 rounding: see
// tests/test_inference_graph.cpp for the tolerance and its reason.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/tensor.h"
#include "kernels/conv2d_infer.h"

namespace emotune {

class Module;

// The network holds something the graph cannot express (see the top of this file), as opposed
// to an inconsistent network (shapes that do not chain): the one error compile_or_fallback turns
// into the training graph.
struct GraphUnsupported : Error {
  using Error::Error;
};

struct InferenceOptions {
  // "auto" (the rule above), "im2col" or "winograd" (where supported): for tests and benchmarks.
  std::string conv_algo = "auto";
};

class InferenceGraph {
 public:
  // in_c x in_h x in_w: one input image's shape. Throws GraphUnsupported naming the layer the
  // graph cannot express, emotune::Error for an inconsistent network (shapes that do not chain,
  // an input too small) or an unknown algorithm.
  static std::shared_ptr<InferenceGraph> compile(const Module& net, int in_c, int in_h, int in_w,
                                                 const InferenceOptions& options = {});

  // The one rule for a network the graph cannot express, used by load_model: null after one line
  // on stderr naming the layer ("warning: inference graph: layer 'x' (...) has no inference step;
  // running the training graph"), and the caller runs the modules' forward, slower but the same
  // function. A layer that trains therefore always predicts. Other errors still throw.
  static std::shared_ptr<InferenceGraph> compile_or_fallback(const Module& net, int in_c, int in_h, int in_w);

  // Logits [n, outputs()] for n images [n, in_c, in_h, in_w]. The activation buffers belong to
  // the calling thread, so host threads may share one graph (the kernels' OpenMP regions and
  // OpenBLAS's thread count are still process-wide: run one forward at a time for speed).
  // step_ms (optional) receives each step's wall time, for benchmarks.
  std::vector<float> forward(const float* x, int n, std::vector<double>* step_ms = nullptr) const;

  int outputs() const { return outputs_; }
  // One line per step: what it fused and the algorithm chosen.
  std::string describe() const;

  struct Step;

 private:
  friend class InferenceBuilder;
  std::vector<std::shared_ptr<Step>> steps_;
  int in_c_ = 0, in_h_ = 0, in_w_ = 0, outputs_ = 0;
};

// What a layer's lower_to_graph calls, one call per layer in network order. Each appends the layer
// named `name` to the open step when the rules at the top of this file let it fuse there, and
// otherwise closes that step and starts the layer's own. Shapes are checked as they chain
// (emotune::Error naming the layer).
class InferenceBuilder {
 public:
  InferenceBuilder(InferenceGraph& graph, const InferenceOptions& options, int in_c, int in_h, int in_w);

  void conv2d(const std::string& name, const Tensor& weight, const Tensor& bias, int stride, int pad);
  void linear(const std::string& name, const Tensor& weight, const Tensor& bias);
  // False when no step can take it (the layer then calls unsupported).
  bool batch_norm(const std::string& name, const Tensor& gamma, const Tensor& beta, const Tensor& mean,
                  const Tensor& var, float eps);
  void relu(const std::string& name);
  void max_pool2d(const std::string& name, int kernel, int stride);
  void dropout(const std::string& name);  // the identity: no step
  void flatten(const std::string& name);  // free: NCHW rows are already contiguous
  // Throws GraphUnsupported: "inference graph: layer '<name>' (<what>) <why>".
  [[noreturn]] void unsupported(const std::string& name, const std::string& what, const std::string& why);
  // Closes the last step and checks the network ends in a dense step (GraphUnsupported if not).
  void finish();

 private:
  // How far the open step has come (each stage admits only the layers after it).
  enum class Stage { producer, folded, relu, affine, dropout };
  void close();
  void close_conv(InferenceGraph::Step& s);

  InferenceGraph& g_;
  const InferenceOptions& options_;
  int c_, h_, w_;
  bool flat_ = false;
  std::shared_ptr<InferenceGraph::Step> open_;  // the conv or dense step later layers may join
  Stage stage_ = Stage::producer;
};

constexpr int kWinogradMinChannels = 16;

}  // namespace emotune
