#include "layers/inference.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "base/error.h"
#include "kernels/cpu/conv2d_bf16_direct.h"
#include "kernels/cpu/conv2d_thin.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/max_pool2d.h"
#include "kernels/runtime.h"
#include "layers/module.h"

namespace emotune {

struct InferenceGraph::Step {
  enum Kind { conv, dense, pool, relu } kind = conv;
  std::string names;  // the layers it stands for, "conv1+relu1+bn1+pool1"
  // conv: shape with n = 1 (set per call); w the (folded) filters; winograd: the tile sizes this
  // step may use (per call, by cost) and their transformed filters, F(4x4)'s made on first use
  Conv2dShape shape;
  bool winograd = false, winograd4 = false;
  std::string algo = "auto";
  std::vector<float> u2;
  mutable std::vector<float> u4;
  mutable std::once_flag u4_once;
  // u2 in bf16 for the bf16 kernel: made at compile time when the process runs bf16 then, else on
  // the first bf16 call; never per call (issue 23, point 5)
  mutable std::shared_ptr<const WinogradBf16Weights> u2_bf16;
  mutable std::once_flag u2_bf16_once;
  // bf16 on AMX (algo auto): the direct convolution instead, its filters packed once, at compile
  // time when the process runs bf16 then, else on first use (kernels/cpu/conv2d_bf16_direct.h)
  mutable std::shared_ptr<const Bf16DirectFilters> direct_bf16;
  mutable std::once_flag direct_bf16_once;
  bool relu_on = false, pool2 = false;
  std::vector<float> w, b, scale, shift;
  // dense
  int in = 0, out = 0;
  // pool (a max-pool the conv step could not absorb)
  Pool2dShape pool_shape;
  // activation shape after the step, per image
  int c = 0, h = 0, wd = 0;

  int64_t out_size() const { return (int64_t)c * h * wd; }
  const WinogradBf16Weights* bf16_weights() const {
    std::call_once(u2_bf16_once, [&] { u2_bf16 = winograd_weights_bf16(shape, u2.data()); });
    return u2_bf16.get();
  }
  bool runs_direct_bf16(const Conv2dShape& p) const {
    return algo == "auto" && cpu_precision() == Precision::bf16 && conv2d_bf16_direct_for_inference(p);
  }
  // fp32, few input terms, no pool to fuse (the first conv): the thin direct form
  // (kernels/cpu/conv2d_thin.h), bias, ReLU and the affine as its rows are stored.
  bool runs_thin(const Conv2dShape& p) const { return algo == "auto" && !pool2 && conv2d_thin_applies(p); }
  const Bf16DirectFilters* direct_filters() const {
    std::call_once(direct_bf16_once, [&] { direct_bf16 = conv2d_bf16_direct_filters(shape, w.data()); });
    return direct_bf16.get();
  }
};

namespace {

std::vector<float> host(const Tensor& t) { return t.defined() ? t.to_vector() : std::vector<float>(); }

// a = gamma / sqrt(var + eps), shift = beta - mean * a: BN(x) = a * x + shift.
void bn_affine(const Tensor& gamma, const Tensor& beta, const Tensor& mean, const Tensor& var, float eps,
               std::vector<float>* a, std::vector<float>* shift) {
  auto g = host(gamma), be = host(beta), mu = host(mean), v = host(var);
  a->resize(g.size());
  shift->resize(g.size());
  for (size_t k = 0; k < g.size(); ++k) {
    (*a)[k] = (float)(g[k] / std::sqrt((double)v[k] + eps));
    (*shift)[k] = (float)(be[k] - (double)mu[k] * (*a)[k]);
  }
}

// Folds BN(z) = a*z + shift into the producer of z: rows of w (per output k) and b.
void fold(std::vector<float>* w, std::vector<float>* b, int outputs, const std::vector<float>& a,
          const std::vector<float>& shift) {
  if ((int)a.size() != outputs) throw Error("inference graph: BatchNorm width does not match its producer");
  const size_t row = w->size() / outputs;
  if (b->empty()) b->assign(outputs, 0.0f);
  for (int k = 0; k < outputs; ++k) {
    for (size_t i = 0; i < row; ++i) (*w)[k * row + i] *= a[k];
    (*b)[k] = (*b)[k] * a[k] + shift[k];
  }
}

// The Winograd tile for this call: F(4x4) when winograd_cost (kernels/conv2d_infer.h) says so,
// except in bf16, whose 8-bit operands F(4x4)'s transforms would amplify up to 256x
// (docs/precision.md): F(2x2) there.
int winograd_tile(const InferenceGraph::Step& s, const Conv2dShape& p, const std::string& algo) {
  if (cpu_precision() == Precision::bf16) return 2;
  if (algo == "winograd4") return 4;
  if (!s.winograd4) return 2;
  return winograd_cost(p, s.pool2, 4) < winograd_cost(p, s.pool2, 2) ? 4 : 2;
}

}  // namespace

std::shared_ptr<InferenceGraph> InferenceGraph::compile(const Module& net, int in_c, int in_h, int in_w,
                                                        const InferenceOptions& options) {
  if (options.conv_algo != "auto" && options.conv_algo != "im2col" && options.conv_algo != "winograd" &&
      options.conv_algo != "winograd4")
    throw Error("inference graph: unknown conv algorithm '" + options.conv_algo +
                "' (auto, im2col, winograd, winograd4)");
  auto g = std::make_shared<InferenceGraph>();
  g->in_c_ = in_c;
  g->in_h_ = in_h;
  g->in_w_ = in_w;
  InferenceBuilder builder(*g, options, in_c, in_h, in_w);
  net.lower_to_graph(builder, "");
  builder.finish();
  return g;
}

std::shared_ptr<InferenceGraph> InferenceGraph::compile_or_fallback(const Module& net, int in_c, int in_h,
                                                                    int in_w) {
  try {
    return compile(net, in_c, in_h, in_w);
  } catch (const GraphUnsupported& e) {
    std::fprintf(stderr, "warning: %s; running the training graph\n", e.what());
    return nullptr;
  }
}

// ------------------------------------------------------------------ InferenceBuilder
InferenceBuilder::InferenceBuilder(InferenceGraph& graph, const InferenceOptions& options, int in_c, int in_h,
                                   int in_w)
    : g_(graph), options_(options), c_(in_c), h_(in_h), w_(in_w) {}

void InferenceBuilder::unsupported(const std::string& name, const std::string& what, const std::string& why) {
  throw GraphUnsupported("inference graph: layer '" + name + "' (" + what + ") " + why);
}

void InferenceBuilder::conv2d(const std::string& name, const Tensor& weight, const Tensor& bias, int stride,
                              int pad) {
  close();
  if (flat_) throw Error("inference graph: " + name + ": a convolution after Flatten");
  const auto& ws = weight.shape();
  if (ws[1] != c_) throw Error("inference graph: " + name + " expects " + std::to_string(ws[1]) + " channels");
  auto s = std::make_shared<InferenceGraph::Step>();
  s->kind = InferenceGraph::Step::conv;
  s->names = name;
  s->shape = Conv2dShape{1, c_, h_, w_, (int)ws[0], (int)ws[2], (int)ws[3], pad, pad, stride, stride};
  s->w = host(weight);
  s->b = host(bias);
  open_ = s;
  stage_ = Stage::producer;
}

void InferenceBuilder::linear(const std::string& name, const Tensor& weight, const Tensor& bias) {
  close();
  auto s = std::make_shared<InferenceGraph::Step>();
  s->kind = InferenceGraph::Step::dense;
  s->names = name;
  s->out = (int)weight.shape()[0];
  s->in = (int)weight.shape()[1];
  if ((int64_t)c_ * h_ * w_ != s->in)
    throw Error("inference graph: " + name + " expects " + std::to_string(s->in) + " inputs, gets " +
                std::to_string((int64_t)c_ * h_ * w_));
  s->w = host(weight);
  s->b = host(bias);
  flat_ = true;
  open_ = s;
  stage_ = Stage::producer;
}

bool InferenceBuilder::batch_norm(const std::string& name, const Tensor& gamma, const Tensor& beta,
                                  const Tensor& mean, const Tensor& var, float eps) {
  const bool fold_here = open_ && stage_ == Stage::producer;
  const bool epilogue = open_ && open_->kind == InferenceGraph::Step::conv && stage_ == Stage::relu;
  if (!fold_here && !epilogue) {
    close();
    return false;
  }
  std::vector<float> a, shift;
  bn_affine(gamma, beta, mean, var, eps, &a, &shift);
  if (fold_here) {
    fold(&open_->w, &open_->b, open_->kind == InferenceGraph::Step::conv ? open_->shape.k : open_->out, a, shift);
    open_->names += "+" + name + "(folded)";
    stage_ = Stage::folded;
  } else {
    open_->scale = std::move(a);
    open_->shift = std::move(shift);
    open_->names += "+" + name + "(epilogue)";
    stage_ = Stage::affine;
  }
  return true;
}

void InferenceBuilder::relu(const std::string& name) {
  if (open_ && (stage_ == Stage::producer || stage_ == Stage::folded)) {
    open_->relu_on = true;
    open_->names += "+" + name;
    stage_ = Stage::relu;
    return;
  }
  close();
  auto s = std::make_shared<InferenceGraph::Step>();
  s->kind = InferenceGraph::Step::relu;
  s->names = name;
  s->c = c_, s->h = h_, s->wd = w_;
  g_.steps_.push_back(s);
}

void InferenceBuilder::max_pool2d(const std::string& name, int kernel, int stride) {
  if (open_ && open_->kind == InferenceGraph::Step::conv && kernel == 2 && stride == 2) {
    open_->pool2 = true;  // reduced in the conv's epilogue: nothing joins after it
    open_->names += "+" + name;
    close();
    return;
  }
  close();
  auto s = std::make_shared<InferenceGraph::Step>();
  s->kind = InferenceGraph::Step::pool;
  s->names = name;
  s->pool_shape = Pool2dShape{1, c_, h_, w_, kernel, kernel, stride, stride};
  h_ = s->pool_shape.out_h();
  w_ = s->pool_shape.out_w();
  s->c = c_, s->h = h_, s->wd = w_;
  g_.steps_.push_back(s);
}

// Between a conv's epilogue and its pool, dropout keeps the step open (only the pool may still
// join); after a dense step it ends it.
void InferenceBuilder::dropout(const std::string&) {
  if (open_ && open_->kind == InferenceGraph::Step::conv)
    stage_ = Stage::dropout;
  else
    close();
}

void InferenceBuilder::flatten(const std::string&) {
  close();
  flat_ = true;
}

void InferenceBuilder::close() {
  if (!open_) return;
  InferenceGraph::Step& s = *open_;
  if (s.kind == InferenceGraph::Step::conv) {
    close_conv(s);
  } else {
    c_ = s.out, h_ = 1, w_ = 1;
  }
  s.c = c_, s.h = h_, s.wd = w_;
  g_.steps_.push_back(open_);
  open_.reset();
}

// The conv step's output shape, and its algorithm for that shape (Winograd's filters made now).
void InferenceBuilder::close_conv(InferenceGraph::Step& s) {
  c_ = s.shape.k;
  h_ = s.shape.out_h();
  w_ = s.shape.out_w();
  if (s.pool2) h_ /= 2, w_ /= 2;
  if (s.shape.out_h() < 1 || s.shape.out_w() < 1 || h_ < 1 || w_ < 1)
    throw Error("inference graph: " + s.names + ": the input is too small for this network");
  const bool fits = winograd_supported(s.shape);
  const std::string& algo = options_.conv_algo;
  s.algo = algo;
  s.winograd = algo == "winograd" || algo == "winograd4" ? fits
                                                         : algo != "im2col" && fits && s.shape.c >= kWinogradMinChannels;
  s.winograd4 = s.winograd && algo != "winograd";
  if (s.runs_direct_bf16(s.shape)) s.direct_filters();
  if (s.winograd) {
    s.u2.resize((size_t)winograd_weights_size(s.shape, 2));
    winograd_weights(s.shape, s.w.data(), s.u2.data(), 2);
    if (cpu_precision() == Precision::bf16 && !s.runs_direct_bf16(s.shape)) s.bf16_weights();
  }
}

void InferenceBuilder::finish() {
  close();
  if (g_.steps_.empty() || h_ != 1 || w_ != 1)
    throw GraphUnsupported("inference graph: the network does not end in a dense layer");
  g_.outputs_ = c_;
}

std::vector<float> InferenceGraph::forward(const float* x, int n, std::vector<double>* step_ms) const {
  if (n <= 0) return {};
  thread_local std::vector<float> buf_[2];  // activations, kept between calls
  const float* in = x;
  int cur = 0;
  if (step_ms) step_ms->clear();
  BlasSerialScope serial;  // OpenMP does the threading in every step
  for (const auto& sp : steps_) {
    const auto t0 = std::chrono::steady_clock::now();
    Step& s = *sp;
    const int64_t need = n * s.out_size();
    if ((int64_t)buf_[cur].size() < need) buf_[cur].resize((size_t)need);
    float* out = buf_[cur].data();
    switch (s.kind) {
      case Step::conv: {
        Conv2dShape p = s.shape;
        p.n = n;
        ConvEpilogue e;
        e.relu = s.relu_on;
        e.scale = s.scale.empty() ? nullptr : s.scale.data();
        e.shift = s.shift.empty() ? nullptr : s.shift.data();
        e.pool2 = s.pool2;
        const float* b = s.b.empty() ? nullptr : s.b.data();
        const int tile = s.winograd ? winograd_tile(s, p, s.algo) : 0;
        if (s.runs_direct_bf16(p)) {
          // The direct form has bias, ReLU and the affine; a fused pool runs after it.
          thread_local std::vector<float> full;
          float* dst = out;
          if (e.pool2) {
            if ((int64_t)full.size() < p.y_size()) full.resize((size_t)p.y_size());
            dst = full.data();
          }
          if (!conv2d_forward_bf16_direct(p, in, s.w.data(), b, e.relu, dst, s.direct_filters(), e.scale, e.shift))
            throw Error("inference graph: " + s.names + ": the direct bf16 form refused its shape");
          if (e.pool2) max_pool2d_forward_cpu(Pool2dShape{n, p.k, p.out_h(), p.out_w()}, dst, out);
        } else if (s.runs_thin(p)) {
          conv2d_thin_forward(p, in, s.w.data(), b, e.relu, e.scale, e.shift, out);
        } else if (tile == 4) {
          std::call_once(s.u4_once, [&] {
            s.u4.resize((size_t)winograd_weights_size(s.shape, 4));
            winograd_weights(s.shape, s.w.data(), s.u4.data(), 4);
          });
          conv2d_infer_winograd_cpu(p, in, s.u4.data(), b, e, out, 4);
        } else if (tile == 2) {
          const WinogradBf16Weights* ub = cpu_precision() == Precision::bf16 ? s.bf16_weights() : nullptr;
          conv2d_infer_winograd_cpu(p, in, s.u2.data(), b, e, out, 2, ub);
        } else {
          conv2d_infer_im2col_cpu(p, in, s.w.data(), b, e, out);
        }
        break;
      }
      case Step::dense:
        linear_infer_cpu(LinearShape{n, s.in, s.out}, in, s.w.data(), s.b.empty() ? nullptr : s.b.data(), s.relu_on,
                         out);
        break;
      case Step::pool: {
        Pool2dShape p = s.pool_shape;
        p.n = n;
        max_pool2d_forward_cpu(p, in, out);
        break;
      }
      case Step::relu:
        relu_forward_cpu(need, in, out);
        break;
    }
    in = out;
    cur ^= 1;
    if (step_ms)
      step_ms->push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  return std::vector<float>(in, in + (size_t)n * outputs_);
}

std::string InferenceGraph::describe() const {
  std::string out;
  char buf[160];
  for (const auto& s : steps_) {
    const char* algo = s->kind == Step::conv ? (s->runs_direct_bf16(s->shape) ? "direct bf16 (amx)"
                                                : s->runs_thin(s->shape)        ? "direct fp32 (thin)"
                                                : s->winograd4                  ? "winograd F(2x2)/F(4x4) by batch"
                                                : s->winograd ? "winograd F(2x2,3x3)"
                                                              : "im2col+sgemm")
                     : s->kind == Step::dense ? "sgemm"
                                              : "loop";
    std::snprintf(buf, sizeof buf, "  %-44s -> %dx%dx%d  [%s]\n", s->names.c_str(), s->c, s->h, s->wd, algo);
    out += buf;
  }
  return out;
}

}  // namespace emotune
