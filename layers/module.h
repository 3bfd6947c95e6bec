// The Module API: forward, named parameters (trainable) and buffers (running statistics),
// train/eval, a device move, and the per-step context dropout needs.
// Names are "<child>.<tensor>" ("conv1.weight", "bn1.running_mean"), stable across runs: they
// are the keys of checkpoints.
//
// A layer type is declared once, by its class: besides forward it overrides the virtuals below
// that apply to it, and nothing else in the code switches on its type (docs/architecture.md,
// "Adding an op"):
//   forward_with_next  run with the next layer as one op (Conv2d + ReLU)
//   lower_to_graph     its step(s) in the CPU inference graph (layers/inference.h)
//   export_onnx        its ONNX nodes (layers/onnx_writer.h; the protobuf is apps/export's)
//   init_torch         PyTorch's default initialisation of its weights
// Defaults are loud, never a guess: a layer without lower_to_graph makes the graph refuse the
// network (load_model then runs the training graph, with a warning: InferenceGraph::
// compile_or_fallback), one without export_onnx makes the export fail naming it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/tensor.h"

namespace emotune {

class InferenceBuilder;  // layers/inference.h
class OnnxWriter;        // layers/onnx_writer.h

class Module {
 public:
  virtual ~Module() = default;
  virtual Tensor forward(const Tensor& x) = 0;
  Tensor operator()(const Tensor& x) { return forward(x); }
  virtual std::string describe() const = 0;  // one line, e.g. "Conv2d(1->64, 3x3, same)"

  // Trainable parameters and non-trainable buffers, named with `prefix`.
  virtual void collect(const std::string& prefix, std::vector<ParamRef>& params,
                       std::vector<NamedTensor>& buffers);
  // Extra loss terms (L2 penalties on kernels that ask for one).
  virtual void collect_penalties(std::vector<Tensor>& out);
  virtual void set_training(bool on) { training_ = on; }
  // Dropout masks derive from (seed, step): the trainer sets the step before each forward.
  virtual void set_seed(uint64_t seed) { (void)seed; }
  virtual void set_step(uint64_t step) { (void)step; }

  // forward(x), or, when this layer and `next` (the following layer of a Sequential, or null) run
  // faster as one op, both: *consumed says how many ran (1 or 2). Values and gradients are those of
  // the layers run one by one. Default: this layer alone.
  virtual Tensor forward_with_next(const Tensor& x, const Module* next, int* consumed);
  // Appends this layer, named `name`, to the inference graph being built, through the builder's
  // calls (which fuse it into the step before where they can). Default: the builder's unsupported.
  virtual void lower_to_graph(InferenceBuilder& graph, const std::string& name) const;
  // Appends this layer's ONNX nodes and initialisers. Default: Error naming the layer.
  virtual void export_onnx(OnnxWriter& onnx, const std::string& name) const;
  // Redraws the weights as PyTorch initialises them (make_network, init "torch"). Default: none.
  virtual void init_torch(Rng& rng) { (void)rng; }

  bool training() const { return training_; }
  std::vector<ParamRef> parameters();
  std::vector<NamedTensor> buffers();
  std::vector<NamedTensor> state_dict();           // parameters then buffers
  void load_state_dict(const Checkpoint& ck);      // strict: every tensor present, shapes equal
  void to(Device device);                          // moves parameters and buffers in place
  int64_t count_parameters(bool include_buffers);  // Keras counts buffers too
  Tensor penalty();                                // sum of collect_penalties, or undefined

 protected:
  bool training_ = true;
};

// A tensor in place on another device: every handle to it (optimizer refs) sees the move.
void move_tensor(Tensor& t, Device device);

}  // namespace emotune
