// The layers: Conv2d, BatchNorm2d, MaxPool2d, Dropout, Linear, ReLU, Flatten, Sequential.
// Each is a thin Module over one op of engine/ops.h; weights are initialised from the Rng given
// at construction (Keras defaults: glorot_uniform kernels, zero biases, BN gamma 1 beta 0).
// Each class is the one declaration of its layer type (layers/module.h): its lowering into the
// inference graph, its ONNX nodes and its other hooks are defined beside its forward in layers.cpp.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/rng.h"
#include "layers/module.h"

namespace emotune {

class Conv2d : public Module {
 public:
  // padding: "same" or "valid" (Keras names), or "half" (k // 2 at any stride: engine/ops.h).
  Conv2d(int in, int out, int kernel, const std::string& padding, Rng& rng, bool bias = true,
         int stride = 1, const std::string& init = "glorot_uniform");
  Tensor forward(const Tensor& x) override;
  // forward followed by ReLU, in one pass: forward_with_next runs a Conv2d + ReLU pair through it.
  Tensor forward_relu(const Tensor& x);
  Tensor forward_with_next(const Tensor& x, const Module* next, int* consumed) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  void init_torch(Rng& rng) override;
  std::string describe() const override;
  void collect(const std::string& prefix, std::vector<ParamRef>& params,
               std::vector<NamedTensor>& buffers) override;
  Tensor weight, bias;
  // Hyper-parameters: symmetric zero padding pad().
  int kernel() const { return kernel_; }
  int stride() const { return stride_; }
  int pad() const { return pad_; }

 private:
  int in_, out_, kernel_, stride_, pad_;
  std::string padding_;
};

class BatchNorm2d : public Module {
 public:
  // momentum: weight of the new batch (Keras' momentum m is 1 - m here); eps as Keras' 1e-3.
  explicit BatchNorm2d(int channels, float momentum = 0.01f, float eps = 1e-3f);
  Tensor forward(const Tensor& x) override;
  // A ReLU right after runs in batch_norm's own passes (ops::batch_norm_relu).
  Tensor forward_with_next(const Tensor& x, const Module* next, int* consumed) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override;
  void collect(const std::string& prefix, std::vector<ParamRef>& params,
               std::vector<NamedTensor>& buffers) override;
  Tensor gamma, beta, running_mean, running_var;
  float eps() const { return eps_; }

 private:
  int channels_;
  float momentum_, eps_;
};

class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int kernel, int stride = -1) : kernel_(kernel), stride_(stride < 0 ? kernel : stride) {}
  Tensor forward(const Tensor& x) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override;
  int kernel() const { return kernel_; }
  int stride() const { return stride_; }

 private:
  int kernel_, stride_;
};

class Dropout : public Module {
 public:
  explicit Dropout(float p);
  Tensor forward(const Tensor& x) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override;
  void set_seed(uint64_t seed) override { seed_ = seed; }
  void set_step(uint64_t step) override { step_ = step; }

 private:
  float p_;
  uint64_t seed_ = 0, step_ = 0;
};

class Linear : public Module {
 public:
  // l2 > 0 adds l2 * sum(weight^2) to the loss (Keras' kernel_regularizer=l2(l2)).
  Linear(int in, int out, Rng& rng, float l2 = 0.0f, const std::string& init = "glorot_uniform");
  Tensor forward(const Tensor& x) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  void init_torch(Rng& rng) override;
  std::string describe() const override;
  void collect(const std::string& prefix, std::vector<ParamRef>& params,
               std::vector<NamedTensor>& buffers) override;
  void collect_penalties(std::vector<Tensor>& out) override;
  Tensor weight, bias;

 private:
  int in_, out_;
  float l2_;
};

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override { return "ReLU"; }
};

class Flatten : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override { return "Flatten"; }
};

class Sequential;

// A residual block (He et al. 2016, "Deep Residual Learning"): relu(body(x) + shortcut(x)). The
// shortcut is the identity when null (body keeps the shape), else a Sequential of its own (a
// strided 1x1 conv + BN where the body changes the shape). Both name their children into the
// block's namespace, "<block>.<child>", so their child names must differ. Not in the CPU
// inference graph yet: a network with one runs on the training graph's forward (load_model
// warns once, layers/inference.h).
class Residual : public Module {
 public:
  Residual(std::shared_ptr<Sequential> body, std::shared_ptr<Sequential> shortcut);
  Tensor forward(const Tensor& x) override;
  // Add reads the body's output and the shortcut's; Relu follows (layers/onnx_writer.h branches).
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  void init_torch(Rng& rng) override;
  std::string describe() const override;
  void collect(const std::string& prefix, std::vector<ParamRef>& params,
               std::vector<NamedTensor>& buffers) override;
  void collect_penalties(std::vector<Tensor>& out) override;
  void set_training(bool on) override;
  void set_seed(uint64_t seed) override;
  void set_step(uint64_t step) override;

 private:
  std::vector<Sequential*> branches() const;  // body, then the shortcut when it is not the identity
  std::shared_ptr<Sequential> body_, shortcut_;
};

// The mean of each channel over its H x W plane: [N, C, H, W] -> [N, C] (ResNet's head; ONNX
// GlobalAveragePool + Flatten). Through ops::linear with a constant 1 / (H W) row, so its
// gradient is linear's. Not in the CPU inference graph yet (as Residual).
class GlobalAvgPool2d : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  std::string describe() const override { return "GlobalAvgPool2d"; }
};

class Sequential : public Module {
 public:
  Sequential& add(const std::string& name, std::shared_ptr<Module> m);
  Tensor forward(const Tensor& x) override;
  // Children [begin, end) only, as forward runs them (a Conv2d + ReLU pair inside the range runs
  // as one op): a prefix up to an activation and the rest from it (layers/gradcam.h).
  Tensor forward_range(const Tensor& x, size_t begin, size_t end);
  // The children's, in order, named "<name>.<child>" ("<child>" at the top).
  void lower_to_graph(InferenceBuilder& graph, const std::string& name) const override;
  void export_onnx(OnnxWriter& onnx, const std::string& name) const override;
  void init_torch(Rng& rng) override;
  std::string describe() const override;
  void collect(const std::string& prefix, std::vector<ParamRef>& params,
               std::vector<NamedTensor>& buffers) override;
  void collect_penalties(std::vector<Tensor>& out) override;
  void set_training(bool on) override;
  void set_seed(uint64_t seed) override;
  void set_step(uint64_t step) override;

  struct Child {
    std::string name;
    std::shared_ptr<Module> module;
  };
  const std::vector<Child>& children() const { return children_; }
  // Runs forward and returns each child's output shape, for summaries and shape tests.
  std::vector<std::pair<std::string, Shape>> trace_shapes(const Tensor& x);

 private:
  std::vector<Child> children_;
};

}  // namespace emotune
