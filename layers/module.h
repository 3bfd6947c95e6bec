// The Module API: forward, named parameters (trainable) and buffers (running statistics),
// train/eval, a device move, and the per-step context dropout needs.
// Names are "<child>.<tensor>" ("conv1.weight", "bn1.running_mean"), stable across runs: they
// are the keys of checkpoints.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/optim.h"
#include "engine/tensor.h"

namespace emotune {

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
