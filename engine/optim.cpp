#include "engine/optim.h"

#include "engine/autograd.h"
#include "engine/dispatch.h"

namespace emotune {

namespace {
std::vector<Tensor> zeros_like_all(const std::vector<ParamRef>& params) {
  std::vector<Tensor> out;
  for (const auto& p : params) out.push_back(Tensor::zeros(p.tensor.shape(), p.tensor.device()));
  return out;
}

void restore(const Checkpoint& ck, const std::string& name, Tensor& dst) {
  dst.copy_from(ck.get(name, dst.shape()));
}
}  // namespace

void Optimizer::zero_grad() {
  for (auto& p : params_) p.tensor.zero_grad();
}

Sgd::Sgd(std::vector<ParamRef> params, const SgdOptions& o) : Optimizer(std::move(params)), o_(o) {
  velocity_ = zeros_like_all(params_);
}

void Sgd::step(float lr) {
  NoGradGuard guard;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& w = params_[i].tensor;
    Tensor g = w.grad();
    if (!g.defined()) continue;
    SgdParams p;
    p.lr = lr;
    p.momentum = o_.momentum;
    p.weight_decay = params_[i].decay ? o_.weight_decay : 0.0f;
    p.nesterov = o_.nesterov;
    EMOTUNE_KERNEL(w.device(), sgd_update)(w.numel(), p, w.data(), g.data(), velocity_[i].data());
  }
}

std::vector<NamedTensor> Sgd::state() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < params_.size(); ++i)
    out.push_back({"optim." + params_[i].name + ".velocity", velocity_[i]});
  return out;
}

void Sgd::load_state(const Checkpoint& ck) {
  for (size_t i = 0; i < params_.size(); ++i)
    restore(ck, "optim." + params_[i].name + ".velocity", velocity_[i]);
}

Adam::Adam(std::vector<ParamRef> params, const AdamOptions& o) : Optimizer(std::move(params)), o_(o) {
  m_ = zeros_like_all(params_);
  v_ = zeros_like_all(params_);
}

void Adam::step(float lr) {
  NoGradGuard guard;
  ++steps_;
  for (size_t i = 0; i < params_.size(); ++i) {
    Tensor& w = params_[i].tensor;
    Tensor g = w.grad();
    if (!g.defined()) continue;
    AdamParams p;
    p.lr = lr;
    p.beta1 = o_.beta1;
    p.beta2 = o_.beta2;
    p.eps = o_.eps;
    p.weight_decay = params_[i].decay ? o_.weight_decay : 0.0f;
    p.decoupled = o_.decoupled;
    p.step = steps_;
    EMOTUNE_KERNEL(w.device(), adam_update)(w.numel(), p, w.data(), g.data(), m_[i].data(), v_[i].data());
  }
}

std::vector<NamedTensor> Adam::state() const {
  std::vector<NamedTensor> out;
  for (size_t i = 0; i < params_.size(); ++i) {
    out.push_back({"optim." + params_[i].name + ".m", m_[i]});
    out.push_back({"optim." + params_[i].name + ".v", v_[i]});
  }
  return out;
}

void Adam::load_state(const Checkpoint& ck) {
  for (size_t i = 0; i < params_.size(); ++i) {
    restore(ck, "optim." + params_[i].name + ".m", m_[i]);
    restore(ck, "optim." + params_[i].name + ".v", v_[i]);
  }
}

}  // namespace emotune
