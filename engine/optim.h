// Optimizers over named parameters: SGD (momentum, Nesterov, weight decay) and Adam / AdamW.
// step(lr) reads each parameter's .grad and calls the fused update kernel of its device
// (kernels/optim.h); parameters without a gradient are skipped. The state (velocity, moments,
// step count) can be exported to and restored from a checkpoint, so --resume continues exactly.
//
// Who owns the learning rate: the schedule (engine/schedule.h), alone. An optimizer holds only
// the hyper-parameters that never change during a run (SgdOptions, AdamOptions: no lr field) and
// is handed the learning rate on every step(lr); the trainer asks the schedule for the epoch's lr
// once and passes that same value to each step and to the metrics. kernels/optim.h's SgdParams /
// AdamParams are the arguments of one kernel call, assembled inside step() from the options, the
// lr and the step count; they are not configuration.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "engine/tensor.h"
#include "kernels/optim.h"

namespace emotune {

struct ParamRef {
  std::string name;
  Tensor tensor;      // shares storage with the module's parameter
  bool decay = true;  // weight decay applies (kernels); not to biases and batch-norm parameters
};

class Optimizer {
 public:
  explicit Optimizer(std::vector<ParamRef> params) : params_(std::move(params)) {}
  virtual ~Optimizer() = default;
  virtual void step(float lr) = 0;  // one update of every parameter with a gradient, at this lr
  void zero_grad();
  virtual std::vector<NamedTensor> state() const = 0;  // names "optim.<param>.<slot>"
  virtual void load_state(const Checkpoint& ck) = 0;   // throws naming the missing tensor
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }  // on resume: Adam's bias correction continues

 protected:
  std::vector<ParamRef> params_;
  int64_t steps_ = 0;
};

struct SgdOptions {
  float momentum = 0.0f, weight_decay = 0.0f;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamRef> params, const SgdOptions& o);
  void step(float lr) override;
  std::vector<NamedTensor> state() const override;
  void load_state(const Checkpoint& ck) override;

 private:
  SgdOptions o_;
  std::vector<Tensor> velocity_;
};

struct AdamOptions {
  float beta1 = 0.9f, beta2 = 0.999f, eps = 1e-7f, weight_decay = 0.0f;  // Keras defaults
  bool decoupled = false;  // AdamW
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamRef> params, const AdamOptions& o);
  void step(float lr) override;
  std::vector<NamedTensor> state() const override;
  void load_state(const Checkpoint& ck) override;

 private:
  AdamOptions o_;
  std::vector<Tensor> m_, v_;
};

}  // namespace emotune
