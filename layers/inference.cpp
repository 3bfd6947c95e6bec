#include "layers/inference.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <mutex>

#include "base/error.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/max_pool2d.h"
#include "kernels/runtime.h"
#include "layers/layers.h"

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
  bool relu_on = false, pool2 = false;
  std::vector<float> w, b, scale, shift;
  // dense
  int in = 0, out = 0;
  // pool (a max-pool the conv step could not absorb)
  Pool2dShape pool_shape;
  // activation shape after the step, per image
  int c = 0, h = 0, wd = 0;

  int64_t out_size() const { return (int64_t)c * h * wd; }
};

namespace {

std::vector<float> host(const Tensor& t) { return t.defined() ? t.to_vector() : std::vector<float>(); }

// a = gamma / sqrt(var + eps), shift = beta - mean * a: BN(x) = a * x + shift.
void bn_affine(const BatchNorm2d& bn, std::vector<float>* a, std::vector<float>* shift) {
  auto g = host(bn.gamma), be = host(bn.beta), mu = host(bn.running_mean), var = host(bn.running_var);
  a->resize(g.size());
  shift->resize(g.size());
  for (size_t k = 0; k < g.size(); ++k) {
    (*a)[k] = (float)(g[k] / std::sqrt((double)var[k] + bn.eps()));
    (*shift)[k] = (float)(be[k] - (double)mu[k] * (*a)[k]);
  }
}

// Folds BN(z) = a*z + shift into the producer of z: rows of w (per output k) and b.
void fold(std::vector<float>* w, std::vector<float>* b, int outputs, const BatchNorm2d& bn) {
  std::vector<float> a, shift;
  bn_affine(bn, &a, &shift);
  if ((int)a.size() != outputs) throw Error("inference graph: BatchNorm width does not match its producer");
  const size_t row = w->size() / outputs;
  if (b->empty()) b->assign(outputs, 0.0f);
  for (int k = 0; k < outputs; ++k) {
    for (size_t i = 0; i < row; ++i) (*w)[k * row + i] *= a[k];
    (*b)[k] = (*b)[k] * a[k] + shift[k];
  }
}

// The Winograd tile for this call: F(4x4) when winograd_cost (kernels/conv2d_infer.h) says so.
int winograd_tile(const InferenceGraph::Step& s, const Conv2dShape& p, const std::string& algo) {
  if (algo == "winograd4") return 4;
  if (!s.winograd4) return 2;
  return winograd_cost(p, s.pool2, 4) < winograd_cost(p, s.pool2, 2) ? 4 : 2;
}

template <typename T>
const T* as(const Sequential::Child& c) {
  return dynamic_cast<const T*>(c.module.get());
}

}  // namespace

std::shared_ptr<InferenceGraph> InferenceGraph::compile(const Sequential& net, int in_c, int in_h, int in_w,
                                                        const InferenceOptions& options) {
  if (options.conv_algo != "auto" && options.conv_algo != "im2col" && options.conv_algo != "winograd" &&
      options.conv_algo != "winograd4")
    throw Error("inference graph: unknown conv algorithm '" + options.conv_algo +
                "' (auto, im2col, winograd, winograd4)");
  auto g = std::make_shared<InferenceGraph>();
  g->in_c_ = in_c;
  g->in_h_ = in_h;
  g->in_w_ = in_w;
  const auto& ch = net.children();
  int c = in_c, h = in_h, w = in_w;
  bool flat = false;
  size_t i = 0;
  auto skip_dropout = [&] {
    while (i < ch.size() && as<Dropout>(ch[i])) ++i;
  };
  while (i < ch.size()) {
    auto s = std::make_shared<Step>();
    s->names = ch[i].name;
    if (const auto* conv = as<Conv2d>(ch[i])) {
      if (flat) throw Error("inference graph: " + ch[i].name + ": a convolution after Flatten");
      ++i;
      s->kind = Step::conv;
      const auto& ws = conv->weight.shape();
      if (ws[1] != c) throw Error("inference graph: " + s->names + " expects " + std::to_string(ws[1]) + " channels");
      s->shape = Conv2dShape{1, c, h, w, (int)ws[0], (int)ws[2], (int)ws[3], conv->pad(), conv->pad(),
                             conv->stride(), conv->stride()};
      s->w = host(conv->weight);
      s->b = host(conv->bias);
      if (i < ch.size() && as<BatchNorm2d>(ch[i])) {
        fold(&s->w, &s->b, s->shape.k, *as<BatchNorm2d>(ch[i]));
        s->names += "+" + ch[i++].name + "(folded)";
      }
      if (i < ch.size() && as<ReLU>(ch[i])) {
        s->relu_on = true;
        s->names += "+" + ch[i++].name;
        if (i < ch.size() && as<BatchNorm2d>(ch[i])) {
          bn_affine(*as<BatchNorm2d>(ch[i]), &s->scale, &s->shift);
          s->names += "+" + ch[i++].name + "(epilogue)";
        }
      }
      skip_dropout();
      if (i < ch.size()) {
        const auto* mp = as<MaxPool2d>(ch[i]);
        if (mp && mp->kernel() == 2 && mp->stride() == 2) {
          s->pool2 = true;
          s->names += "+" + ch[i++].name;
        }
      }
      c = s->shape.k;
      h = s->shape.out_h();
      w = s->shape.out_w();
      if (s->pool2) h /= 2, w /= 2;
      if (s->shape.out_h() < 1 || s->shape.out_w() < 1 || h < 1 || w < 1)
        throw Error("inference graph: " + s->names + ": the input is too small for this network");
      const bool fits = winograd_supported(s->shape);
      s->algo = options.conv_algo;
      s->winograd = options.conv_algo == "winograd" || options.conv_algo == "winograd4"
                        ? fits
                        : options.conv_algo != "im2col" && fits && s->shape.c >= kWinogradMinChannels;
      s->winograd4 = s->winograd && options.conv_algo != "winograd";
      if (s->winograd) {
        s->u2.resize((size_t)winograd_weights_size(s->shape, 2));
        winograd_weights(s->shape, s->w.data(), s->u2.data(), 2);
      }
    } else if (const auto* fc = as<Linear>(ch[i])) {
      ++i;
      s->kind = Step::dense;
      s->out = (int)fc->weight.shape()[0];
      s->in = (int)fc->weight.shape()[1];
      if ((int64_t)c * h * w != s->in)
        throw Error("inference graph: " + s->names + " expects " + std::to_string(s->in) + " inputs, gets " +
                    std::to_string((int64_t)c * h * w));
      s->w = host(fc->weight);
      s->b = host(fc->bias);
      if (i < ch.size() && as<BatchNorm2d>(ch[i])) {
        fold(&s->w, &s->b, s->out, *as<BatchNorm2d>(ch[i]));
        s->names += "+" + ch[i++].name + "(folded)";
      }
      if (i < ch.size() && as<ReLU>(ch[i])) {
        s->relu_on = true;
        s->names += "+" + ch[i++].name;
      }
      c = s->out, h = 1, w = 1;
      flat = true;
    } else if (const auto* mp = as<MaxPool2d>(ch[i])) {
      ++i;
      s->kind = Step::pool;
      s->pool_shape = Pool2dShape{1, c, h, w, mp->kernel(), mp->kernel(), mp->stride(), mp->stride()};
      h = s->pool_shape.out_h();
      w = s->pool_shape.out_w();
    } else if (as<ReLU>(ch[i])) {
      ++i;
      s->kind = Step::relu;
    } else if (as<Dropout>(ch[i])) {
      ++i;
      continue;
    } else if (as<Flatten>(ch[i])) {
      ++i;
      flat = true;
      continue;
    } else {
      throw Error("inference graph: layer '" + ch[i].name + "' (" + ch[i].module->describe() +
                  ") has no inference step");
    }
    s->c = c, s->h = h, s->wd = w;
    g->steps_.push_back(s);
  }
  if (g->steps_.empty() || h != 1 || w != 1) throw Error("inference graph: the network does not end in a dense layer");
  g->outputs_ = c;
  return g;
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
        if (tile == 4) {
          std::call_once(s.u4_once, [&] {
            s.u4.resize((size_t)winograd_weights_size(s.shape, 4));
            winograd_weights(s.shape, s.w.data(), s.u4.data(), 4);
          });
          conv2d_infer_winograd_cpu(p, in, s.u4.data(), b, e, out, 4);
        } else if (tile == 2) {
          conv2d_infer_winograd_cpu(p, in, s.u2.data(), b, e, out, 2);
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
    const char* algo = s->kind == Step::conv ? (s->winograd4 ? "winograd F(2x2)/F(4x4) by batch"
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
