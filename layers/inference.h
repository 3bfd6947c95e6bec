// The CPU inference graph: a trained Sequential network (paper, vgg, or any chain of the layers in
// layers.h) rewritten once, at load time, into a few fused steps that run on plain float buffers
// with no autograd and no per-layer allocation:
//   Conv2d [BatchNorm] [ReLU] [BatchNorm] [Dropout] [MaxPool2d 2x2] [Dropout]  ->  one conv step
//     a BatchNorm right after the conv is folded into its weights and bias (w*a, (b-mean)*a+beta,
//     a = gamma/sqrt(var+eps)); one after the ReLU (the paper net) becomes the conv's per-channel
//     affine epilogue; the pool is reduced in the epilogue (kernels/conv2d_infer.h)
//   Linear [BatchNorm] [ReLU] [Dropout]                                        ->  one dense step
//   Dropout is the identity at inference; Flatten is free (NCHW rows are already contiguous).
// Each conv step picks its algorithm for its real shape: Winograd F(2x2, 3x3) for 3x3 stride-1
// convolutions with at least kWinogradMinChannels input channels, im2col + sgemm otherwise (the
// first layer, one input channel, is a 9-row GEMM that Winograd cannot shorten).
// Its output equals the training graph's eval-mode forward within float32 rounding: see
// tests/test_inference_graph.cpp for the tolerance and its reason.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "kernels/conv2d_infer.h"

namespace emotune {

class Sequential;

struct InferenceOptions {
  // "auto" (the rule above), "im2col" or "winograd" (where supported): for tests and benchmarks.
  std::string conv_algo = "auto";
};

class InferenceGraph {
 public:
  // in_c x in_h x in_w: one input image's shape. Throws emotune::Error naming the layer when the
  // network holds a layer or an order the graph does not know (callers then keep the training
  // graph).
  static std::shared_ptr<InferenceGraph> compile(const Sequential& net, int in_c, int in_h, int in_w,
                                                 const InferenceOptions& options = {});

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
  std::vector<std::shared_ptr<Step>> steps_;
  int in_c_ = 0, in_h_ = 0, in_w_ = 0, outputs_ = 0;
};

constexpr int kWinogradMinChannels = 16;

}  // namespace emotune
