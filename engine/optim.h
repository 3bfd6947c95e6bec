// Optimizers over named parameters: SGD (momentum, Nesterov, weight decay) and Adam / AdamW.
// step() reads each parameter's .grad and calls the fused update kernel of its device
// (kernels/optim.h); parameters without a gradient are skipped. The state (velocity, moments,
// step count) can be exported to and restored from a checkpoint, so --resume continues exactly.
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
  virtual void step() = 0;
  void zero_grad();
  virtual std::vector<NamedTensor> state() const = 0;  // names "optim.<param>.<slot>"
  virtual void load_state(const Checkpoint& ck) = 0;   // throws naming the missing tensor
  float lr() const { return lr_; }
  void set_lr(float lr) { lr_ = lr; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t s) { steps_ = s; }  // on resume: Adam's bias correction continues

 protected:
  std::vector<ParamRef> params_;
  float lr_ = 0.0f;
  int64_t steps_ = 0;
};

class Sgd : public Optimizer {
 public:
  Sgd(std::vector<ParamRef> params, const SgdParams& p);
  void step() override;
  std::vector<NamedTensor> state() const override;
  void load_state(const Checkpoint& ck) override;

 private:
  SgdParams p_;
  std::vector<Tensor> velocity_;
};

class Adam : public Optimizer {
 public:
  Adam(std::vector<ParamRef> params, const AdamParams& p);
  void step() override;
  std::vector<NamedTensor> state() const override;
  void load_state(const Checkpoint& ck) override;

 private:
  AdamParams p_;
  std::vector<Tensor> m_, v_;
};

}  // namespace emotune
