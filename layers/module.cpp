#include "layers/module.h"

#include "base/error.h"
#include "engine/ops.h"
#include "layers/inference.h"

namespace emotune {

void Module::collect(const std::string&, std::vector<ParamRef>&, std::vector<NamedTensor>&) {}
void Module::collect_penalties(std::vector<Tensor>&) {}

Tensor Module::forward_with_next(const Tensor& x, const Module*, int* consumed) {
  *consumed = 1;
  return forward(x);
}

void Module::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  graph.unsupported(name, describe(), "has no inference step");
}

void Module::export_onnx(OnnxWriter&, const std::string& name) const {
  throw Error("onnx export: layer '" + name + "' (" + describe() + ") has no ONNX translation");
}

std::vector<ParamRef> Module::parameters() {
  std::vector<ParamRef> p;
  std::vector<NamedTensor> b;
  collect("", p, b);
  return p;
}

std::vector<NamedTensor> Module::buffers() {
  std::vector<ParamRef> p;
  std::vector<NamedTensor> b;
  collect("", p, b);
  return b;
}

std::vector<NamedTensor> Module::state_dict() {
  std::vector<ParamRef> p;
  std::vector<NamedTensor> b;
  collect("", p, b);
  std::vector<NamedTensor> out;
  for (auto& x : p) out.push_back({x.name, x.tensor});
  for (auto& x : b) out.push_back(x);
  return out;
}

void Module::load_state_dict(const Checkpoint& ck) {
  for (auto& nt : state_dict()) {
    Tensor dst = nt.tensor;
    dst.copy_from(ck.get(nt.name, dst.shape()));
  }
}

void move_tensor(Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  Tensor moved = t.to(device);
  t.impl()->storage = moved.impl()->storage;
  t.impl()->offset = moved.impl()->offset;
  t.impl()->grad = Tensor();
}

void Module::to(Device device) {
  for (auto& nt : state_dict()) move_tensor(nt.tensor, device);
}

int64_t Module::count_parameters(bool include_buffers) {
  std::vector<ParamRef> p;
  std::vector<NamedTensor> b;
  collect("", p, b);
  int64_t n = 0;
  for (auto& x : p) n += x.tensor.numel();
  if (include_buffers)
    for (auto& x : b) n += x.tensor.numel();
  return n;
}

Tensor Module::penalty() {
  std::vector<Tensor> terms;
  collect_penalties(terms);
  Tensor sum;
  for (auto& t : terms) sum = sum.defined() ? ops::add(sum, t) : t;
  return sum;
}

}  // namespace emotune
