#include "layers/layers.h"

#include <cstdio>

#include "base/error.h"
#include "engine/autograd.h"
#include "engine/ops.h"
#include "layers/inference.h"
#include "layers/init.h"
#include "layers/onnx_writer.h"

namespace emotune {

namespace {
using A = OnnxAttribute;

std::string join(const std::string& prefix, const std::string& name) {
  return prefix.empty() ? name : prefix + "." + name;
}
std::string fmt(const char* f, int a, int b, int c) {
  char buf[96];
  std::snprintf(buf, sizeof buf, f, a, b, c);
  return buf;
}
}  // namespace

// ------------------------------------------------------------------ Conv2d
Conv2d::Conv2d(int in, int out, int kernel, const std::string& padding, Rng& rng, bool has_bias,
               int stride, const std::string& init)
    : in_(in), out_(out), kernel_(kernel), stride_(stride),
      pad_(ops::conv2d_padding(padding.c_str(), kernel, stride)), padding_(padding) {
  weight = Tensor::empty({out, in, kernel, kernel});
  init_weights(weight, init, (int64_t)in * kernel * kernel, (int64_t)out * kernel * kernel, rng);
  weight.set_requires_grad(true);
  if (has_bias) bias = Tensor::zeros({out}).set_requires_grad(true);
}

Tensor Conv2d::forward(const Tensor& x) { return ops::conv2d(x, weight, bias, stride_, pad_); }
Tensor Conv2d::forward_relu(const Tensor& x) { return ops::conv2d_relu(x, weight, bias, stride_, pad_); }

// A ReLU right after runs in the conv's output pass (ops::conv2d_relu: values and gradients bit
// for bit those of the pair).
Tensor Conv2d::forward_with_next(const Tensor& x, const Module* next, int* consumed) {
  const bool relu_next = dynamic_cast<const ReLU*>(next) != nullptr;
  *consumed = relu_next ? 2 : 1;
  return relu_next ? forward_relu(x) : forward(x);
}

void Conv2d::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  graph.conv2d(name, weight, bias, stride_, pad_);
}

void Conv2d::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  std::vector<std::string> params{onnx.initializer(name + ".weight", weight)};
  if (bias.defined()) params.push_back(onnx.initializer(name + ".bias", bias));
  const int k = kernel_, s = stride_, p = pad_;
  onnx.node("Conv", name, params,
            {A::of_ints("kernel_shape", {k, k}), A::of_ints("strides", {s, s}), A::of_ints("pads", {p, p, p, p}),
             A::of_ints("dilations", {1, 1}), A::of_int("group", 1)});
}

void Conv2d::init_torch(Rng& rng) { init_torch_uniform(weight, bias, rng); }

std::string Conv2d::describe() const {
  return fmt("Conv2d(%d->%d, %dx", in_, out_, kernel_) + std::to_string(kernel_) + ", " +
         padding_ + (stride_ != 1 ? ", stride " + std::to_string(stride_) : "") +
         (bias.defined() ? "" : ", no bias") + ")";
}

void Conv2d::collect(const std::string& prefix, std::vector<ParamRef>& params,
                     std::vector<NamedTensor>&) {
  params.push_back({join(prefix, "weight"), weight, true});
  if (bias.defined()) params.push_back({join(prefix, "bias"), bias, false});
}

// ------------------------------------------------------------------ BatchNorm2d
BatchNorm2d::BatchNorm2d(int channels, float momentum, float eps)
    : channels_(channels), momentum_(momentum), eps_(eps) {
  gamma = Tensor::full({channels}, 1.0f).set_requires_grad(true);
  beta = Tensor::zeros({channels}).set_requires_grad(true);
  running_mean = Tensor::zeros({channels});
  running_var = Tensor::full({channels}, 1.0f);
}

Tensor BatchNorm2d::forward(const Tensor& x) {
  return ops::batch_norm(x, gamma, beta, running_mean, running_var, training_, momentum_, eps_);
}

// BatchNorm + ReLU (vgg's and resnet18's blocks) as one op: values and gradients bit for bit
// those of the pair; in training it saves two passes over the activations each way.
Tensor BatchNorm2d::forward_with_next(const Tensor& x, const Module* next, int* consumed) {
  if (!dynamic_cast<const ReLU*>(next)) {
    *consumed = 1;
    return forward(x);
  }
  *consumed = 2;
  return ops::batch_norm_relu(x, gamma, beta, running_mean, running_var, training_, momentum_, eps_);
}

// Folded into the conv or dense layer before it, or that layer's epilogue after its ReLU.
void BatchNorm2d::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  if (!graph.batch_norm(name, gamma, beta, running_mean, running_var, eps_))
    graph.unsupported(name, describe(),
                      "has no inference step here: a BatchNorm folds into the conv or dense layer just before it, "
                      "or follows that layer's ReLU");
}

// The inference form, with the running statistics.
void BatchNorm2d::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  onnx.node("BatchNormalization", name,
            {onnx.initializer(name + ".gamma", gamma), onnx.initializer(name + ".beta", beta),
             onnx.initializer(name + ".running_mean", running_mean),
             onnx.initializer(name + ".running_var", running_var)},
            {A::of_float("epsilon", eps_)});
}

std::string BatchNorm2d::describe() const {
  return "BatchNorm2d(" + std::to_string(channels_) + ")";
}

void BatchNorm2d::collect(const std::string& prefix, std::vector<ParamRef>& params,
                          std::vector<NamedTensor>& buffers) {
  params.push_back({join(prefix, "gamma"), gamma, false});
  params.push_back({join(prefix, "beta"), beta, false});
  buffers.push_back({join(prefix, "running_mean"), running_mean});
  buffers.push_back({join(prefix, "running_var"), running_var});
}

// ------------------------------------------------------------------ pooling, dropout
Tensor MaxPool2d::forward(const Tensor& x) { return ops::max_pool2d(x, kernel_, stride_); }
std::string MaxPool2d::describe() const {
  return fmt("MaxPool2d(%dx%d, stride %d)", kernel_, kernel_, stride_);
}
void MaxPool2d::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  graph.max_pool2d(name, kernel_, stride_);
}
void MaxPool2d::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  const int k = kernel_, s = stride_;
  onnx.node("MaxPool", name, {}, {A::of_ints("kernel_shape", {k, k}), A::of_ints("strides", {s, s})});
}

Dropout::Dropout(float p) : p_(p) {
  if (!(p >= 0.0f && p < 1.0f)) throw Error("Dropout: rate must be in [0, 1)");
}

// Each step draws from its own 2^32-element slice of the Philox stream: a mask depends only on
// (seed, step), so a resumed run reproduces it.
Tensor Dropout::forward(const Tensor& x) { return ops::dropout(x, p_, training_, seed_, step_ << 32); }

// The identity at inference: no step, no node.
void Dropout::lower_to_graph(InferenceBuilder& graph, const std::string& name) const { graph.dropout(name); }
void Dropout::export_onnx(OnnxWriter&, const std::string&) const {}

std::string Dropout::describe() const {
  char buf[32];
  std::snprintf(buf, sizeof buf, "Dropout(%.2f)", p_);
  return buf;
}

// ------------------------------------------------------------------ Linear
Linear::Linear(int in, int out, Rng& rng, float l2, const std::string& init)
    : in_(in), out_(out), l2_(l2) {
  weight = Tensor::empty({out, in});
  init_weights(weight, init, in, out, rng);
  weight.set_requires_grad(true);
  bias = Tensor::zeros({out}).set_requires_grad(true);
}

Tensor Linear::forward(const Tensor& x) { return ops::linear(x, weight, bias); }

void Linear::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  graph.linear(name, weight, bias);
}

void Linear::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  std::vector<std::string> params{onnx.initializer(name + ".weight", weight)};
  if (bias.defined()) params.push_back(onnx.initializer(name + ".bias", bias));
  onnx.node("Gemm", name, params, {A::of_int("transB", 1)});  // y = x W^T + b, W stored [OUT, IN]
}

void Linear::init_torch(Rng& rng) { init_torch_uniform(weight, bias, rng); }

std::string Linear::describe() const {
  std::string s = "Linear(" + std::to_string(in_) + "->" + std::to_string(out_);
  if (l2_ > 0) {
    char buf[32];
    std::snprintf(buf, sizeof buf, ", L2 %g", l2_);
    s += buf;
  }
  return s + ")";
}

void Linear::collect(const std::string& prefix, std::vector<ParamRef>& params,
                     std::vector<NamedTensor>&) {
  params.push_back({join(prefix, "weight"), weight, true});
  params.push_back({join(prefix, "bias"), bias, false});
}

void Linear::collect_penalties(std::vector<Tensor>& out) {
  if (l2_ > 0) out.push_back(ops::l2_penalty(weight, l2_));
}

// ------------------------------------------------------------------ ReLU, Flatten
Tensor ReLU::forward(const Tensor& x) { return ops::relu(x); }
void ReLU::lower_to_graph(InferenceBuilder& graph, const std::string& name) const { graph.relu(name); }
void ReLU::export_onnx(OnnxWriter& onnx, const std::string& name) const { onnx.node("Relu", name); }

Tensor Flatten::forward(const Tensor& x) { return ops::flatten(x); }
void Flatten::lower_to_graph(InferenceBuilder& graph, const std::string& name) const { graph.flatten(name); }
void Flatten::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  onnx.node("Flatten", name, {}, {A::of_int("axis", 1)});  // [N, C, H, W] -> [N, C*H*W], NCHW order
}

// ------------------------------------------------------------------ Residual
Residual::Residual(std::shared_ptr<Sequential> body, std::shared_ptr<Sequential> shortcut)
    : body_(std::move(body)), shortcut_(std::move(shortcut)) {
  if (!body_) throw Error("Residual: no body");
  if (shortcut_)
    for (const auto& a : body_->children())
      for (const auto& b : shortcut_->children())
        if (a.name == b.name) throw Error("Residual: body and shortcut both have a child '" + a.name + "'");
}

Tensor Residual::forward(const Tensor& x) {
  Tensor y = body_->forward(x);
  Tensor s = shortcut_ ? shortcut_->forward(x) : x;
  if (y.shape() != s.shape())
    throw Error("Residual: the body gives " + shape_str(y.shape()) + ", the shortcut " + shape_str(s.shape()));
  return ops::relu(ops::add(y, s));
}

void Residual::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  const std::string in = onnx.last_output();
  std::string s = in;
  if (shortcut_) {
    shortcut_->export_onnx(onnx, name);
    s = onnx.last_output();
    onnx.read_from(in);
  }
  body_->export_onnx(onnx, name);
  onnx.node("Add", join(name, "add"), {s});
  onnx.node("Relu", join(name, "relu"));
}

void Residual::init_torch(Rng& rng) {
  for (Sequential* b : branches()) b->init_torch(rng);
}

std::string Residual::describe() const {
  std::string s = "Residual(";
  for (const auto& c : body_->children()) s += (s.back() == '(' ? "" : ", ") + c.module->describe();
  s += shortcut_ ? "; shortcut " : "; identity shortcut";
  if (shortcut_)
    for (const auto& c : shortcut_->children()) s += (s.back() == ' ' ? "" : ", ") + c.module->describe();
  return s + ")";
}

void Residual::collect(const std::string& prefix, std::vector<ParamRef>& params, std::vector<NamedTensor>& buffers) {
  for (Sequential* b : branches()) b->collect(prefix, params, buffers);  // one namespace: "<block>.<child>"
}

void Residual::collect_penalties(std::vector<Tensor>& out) {
  for (Sequential* b : branches()) b->collect_penalties(out);
}

void Residual::set_training(bool on) {
  training_ = on;
  for (Sequential* b : branches()) b->set_training(on);
}

void Residual::set_seed(uint64_t seed) {
  const std::vector<Sequential*> bs = branches();
  for (size_t i = 0; i < bs.size(); ++i) bs[i]->set_seed(derive_seed(seed, i));
}

void Residual::set_step(uint64_t step) {
  for (Sequential* b : branches()) b->set_step(step);
}

std::vector<Sequential*> Residual::branches() const {
  if (shortcut_) return {body_.get(), shortcut_.get()};
  return {body_.get()};
}

// ------------------------------------------------------------------ GlobalAvgPool2d
Tensor GlobalAvgPool2d::forward(const Tensor& x) {
  if (x.ndim() != 4) throw Error("GlobalAvgPool2d: input " + shape_str(x.shape()) + " is not [N, C, H, W]");
  const int64_t n = x.dim(0), c = x.dim(1), hw = x.dim(2) * x.dim(3);
  const Tensor mean = Tensor::full({1, hw}, 1.0f / (float)hw, x.device());
  return ops::reshape(ops::linear(ops::reshape(x, {n * c, hw}), mean, Tensor()), {n, c});
}

void GlobalAvgPool2d::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  onnx.node("GlobalAveragePool", join(name, "pool"));
  onnx.node("Flatten", name, {}, {A::of_int("axis", 1)});  // [N, C, 1, 1] -> [N, C]
}

// ------------------------------------------------------------------ Sequential
Sequential& Sequential::add(const std::string& name, std::shared_ptr<Module> m) {
  for (const auto& c : children_)
    if (c.name == name) throw Error("Sequential: duplicate child name '" + name + "'");
  children_.push_back({name, std::move(m)});
  return *this;
}

Tensor Sequential::forward(const Tensor& x) { return forward_range(x, 0, children_.size()); }

// Each child may run the next one with it (forward_with_next: Conv2d + ReLU), inside the range.
Tensor Sequential::forward_range(const Tensor& x, size_t begin, size_t end) {
  if (begin > end || end > children_.size())
    throw Error("Sequential::forward_range: [" + std::to_string(begin) + ", " + std::to_string(end) +
                ") is not a range of the " + std::to_string(children_.size()) + " children");
  Tensor y = x;
  for (size_t i = begin; i < end;) {
    const Module* next = i + 1 < end ? children_[i + 1].module.get() : nullptr;
    int consumed = 1;
    y = children_[i].module->forward_with_next(y, next, &consumed);
    i += consumed;
  }
  return y;
}

void Sequential::lower_to_graph(InferenceBuilder& graph, const std::string& name) const {
  for (const auto& c : children_) c.module->lower_to_graph(graph, join(name, c.name));
}

void Sequential::export_onnx(OnnxWriter& onnx, const std::string& name) const {
  for (const auto& c : children_) c.module->export_onnx(onnx, join(name, c.name));
}

void Sequential::init_torch(Rng& rng) {
  for (auto& c : children_) c.module->init_torch(rng);
}

std::string Sequential::describe() const {
  std::string s;
  for (const auto& c : children_) s += c.name + ": " + c.module->describe() + "\n";
  return s;
}

void Sequential::collect(const std::string& prefix, std::vector<ParamRef>& params,
                         std::vector<NamedTensor>& buffers) {
  for (auto& c : children_) c.module->collect(join(prefix, c.name), params, buffers);
}

void Sequential::collect_penalties(std::vector<Tensor>& out) {
  for (auto& c : children_) c.module->collect_penalties(out);
}

void Sequential::set_training(bool on) {
  training_ = on;
  for (auto& c : children_) c.module->set_training(on);
}

void Sequential::set_seed(uint64_t seed) {
  for (size_t i = 0; i < children_.size(); ++i) children_[i].module->set_seed(derive_seed(seed, i));
}

void Sequential::set_step(uint64_t step) {
  for (auto& c : children_) c.module->set_step(step);
}

std::vector<std::pair<std::string, Shape>> Sequential::trace_shapes(const Tensor& x) {
  std::vector<std::pair<std::string, Shape>> out;
  Tensor y = x;
  for (auto& c : children_) {
    y = c.module->forward(y);
    out.push_back({c.name, y.shape()});
  }
  return out;
}

}  // namespace emotune
