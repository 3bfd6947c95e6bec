#include "engine/ops.h"

#include <cstring>
#include <string>

#include "engine/autograd.h"
#include "engine/dispatch.h"

namespace emotune::ops {

namespace {

void expect_ndim(const Tensor& t, int n, const char* op, const char* name) {
  if (t.ndim() != n)
    throw Error(std::string(op) + ": " + name + " must have " + std::to_string(n) +
                " dimensions, got shape " + shape_str(t.shape()));
}

void expect_same_device(const char* op, std::initializer_list<const Tensor*> ts) {
  const Tensor* first = nullptr;
  for (const Tensor* t : ts) {
    if (!t->defined()) continue;
    if (!first) first = t;
    else check_same_device(*first, *t, op);
  }
}

Tensor empty_like(const Tensor& t) { return Tensor::empty(t.shape(), t.device()); }

}  // namespace

// ---------------------------------------------------------------- conv2d
int conv2d_padding(const char* mode, int kernel, int stride) {
  if (std::strcmp(mode, "valid") == 0) return 0;
  if (std::strcmp(mode, "same") == 0) {
    if (stride != 1 || kernel % 2 == 0)
      throw Error("conv2d: padding 'same' is supported for stride 1 and odd kernels (got kernel " +
                  std::to_string(kernel) + ", stride " + std::to_string(stride) + ")");
    return (kernel - 1) / 2;
  }
  if (std::strcmp(mode, "half") == 0) {  // PyTorch's padding = k // 2 at any stride (Theano's "half")
    if (kernel % 2 == 0) throw Error("conv2d: padding 'half' needs an odd kernel (got " + std::to_string(kernel) + ")");
    return (kernel - 1) / 2;
  }
  throw Error(std::string("conv2d: unknown padding '") + mode + "' (expected same, valid or half)");
}

namespace {

// conv2d's shape from its operands, every mismatch an Error naming the operand (`op` names the
// caller in the messages).
Conv2dShape conv2d_checked_shape(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int stride,
                                 int pad) {
  const std::string name = op;
  expect_ndim(x, 4, op, "input");
  expect_ndim(w, 4, op, "weight");
  expect_same_device(op, {&x, &w, &b});
  if (x.dim(1) != w.dim(1))
    throw Error(name + ": input " + shape_str(x.shape()) + " has " + std::to_string(x.dim(1)) +
                " channels but weight " + shape_str(w.shape()) + " expects " +
                std::to_string(w.dim(1)));
  if (b.defined() && (b.ndim() != 1 || b.dim(0) != w.dim(0)))
    throw Error(name + ": bias " + shape_str(b.shape()) + " does not match weight " +
                shape_str(w.shape()));
  if (stride < 1 || pad < 0) throw Error(name + ": stride must be >= 1 and padding >= 0");
  Conv2dShape p;
  p.n = (int)x.dim(0); p.c = (int)x.dim(1); p.h = (int)x.dim(2); p.w = (int)x.dim(3);
  p.k = (int)w.dim(0); p.r = (int)w.dim(2); p.s = (int)w.dim(3);
  p.pad_h = p.pad_w = pad; p.stride_h = p.stride_w = stride;
  if (p.out_h() < 1 || p.out_w() < 1 || p.h + 2 * pad < p.r || p.w + 2 * pad < p.s)
    throw Error(name + ": kernel " + shape_str(w.shape()) + " does not fit input " +
                shape_str(x.shape()) + " with padding " + std::to_string(pad));
  return p;
}

// {dx, dw, db} of a conv whose output has gradient g (undefined where not wanted).
std::vector<Tensor> conv2d_grads(const Conv2dShape& p, Device d, const Tensor& xs, const Tensor& ws,
                                 const Tensor& g, bool gx, bool gw, bool has_b) {
  Tensor dx, dw, db;
  if (gx) {
    dx = Tensor::empty(xs.shape(), d);
    EMOTUNE_KERNEL(d, conv2d_backward_input)(p, g.data(), ws.data(), dx.data());
  }
  if (gw) {
    dw = Tensor::empty(ws.shape(), d);
    if (has_b) db = Tensor::empty({p.k}, d);
    EMOTUNE_KERNEL(d, conv2d_backward_weight)(p, xs.data(), g.data(), dw.data(), has_b ? db.data() : nullptr);
  }
  return {dx, dw, db};
}

}  // namespace

namespace {

// conv2d, or relu(conv2d) as one node when `relu`: the ReLU runs in the conv's output pass, and
// backward masks the gradient with y > 0 (the same elements as x > 0 of the unfused relu, NaN
// included: neither passes it) before the conv's backward.
Tensor conv2d_node(const char* op, const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad,
                   bool relu) {
  const Conv2dShape p = conv2d_checked_shape(op, x, w, b, stride, pad);
  Device d = x.device();
  Tensor y = Tensor::empty({p.n, p.k, p.out_h(), p.out_w()}, d);
  const float* bias = b.defined() ? b.data() : nullptr;
  if (relu)
    EMOTUNE_KERNEL(d, conv2d_forward_relu)(p, x.data(), w.data(), bias, y.data());
  else
    EMOTUNE_KERNEL(d, conv2d_forward)(p, x.data(), w.data(), bias, y.data());
  if (needs_grad({&x, &w, &b})) {
    Tensor xs = x.detach(), ws = w.detach(), ys = relu ? y.detach() : Tensor();
    bool gx = x.requires_grad(), gw = w.requires_grad() || (b.defined() && b.requires_grad());
    bool has_b = b.defined();
    record(y, op, {x, w, b}, [=](const Tensor& g) -> std::vector<Tensor> {
      if (!relu) return conv2d_grads(p, d, xs, ws, g, gx, gw, has_b);
      Tensor gm = Tensor::empty(g.shape(), d);
      EMOTUNE_KERNEL(d, relu_backward)(g.numel(), ys.data(), g.data(), gm.data());
      return conv2d_grads(p, d, xs, ws, gm, gx, gw, has_b);
    });
  }
  return y;
}

}  // namespace

Tensor conv2d(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad) {
  return conv2d_node("conv2d", x, w, b, stride, pad, /*relu=*/false);
}

Tensor conv2d_relu(const Tensor& x, const Tensor& w, const Tensor& b, int stride, int pad) {
  return conv2d_node("conv2d_relu", x, w, b, stride, pad, /*relu=*/true);
}

// ---------------------------------------------------------------- max_pool2d
Tensor max_pool2d(const Tensor& x, int kernel, int stride) {
  expect_ndim(x, 4, "max_pool2d", "input");
  Pool2dShape p;
  p.n = (int)x.dim(0); p.c = (int)x.dim(1); p.h = (int)x.dim(2); p.w = (int)x.dim(3);
  p.kh = p.kw = kernel; p.stride_h = p.stride_w = stride;
  if (kernel < 1 || stride < 1 || p.h < kernel || p.w < kernel)
    throw Error("max_pool2d: window " + std::to_string(kernel) + " stride " +
                std::to_string(stride) + " does not fit input " + shape_str(x.shape()));
  Device d = x.device();
  Tensor y = Tensor::empty({p.n, p.c, p.out_h(), p.out_w()}, d);
  EMOTUNE_KERNEL(d, max_pool2d_forward)(p, x.data(), y.data());
  if (needs_grad({&x})) {
    Tensor xs = x.detach();
    record(y, "max_pool2d", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = Tensor::empty(xs.shape(), d);
      EMOTUNE_KERNEL(d, max_pool2d_backward)(p, xs.data(), g.data(), dx.data());
      return {dx};
    });
  }
  return y;
}

// ---------------------------------------------------------------- batch_norm
namespace {

BatchNormShape batch_norm_shape(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                const Tensor& running_mean, const Tensor& running_var) {
  if (x.ndim() != 4 && x.ndim() != 2)
    throw Error("batch_norm: input must be [N,C,H,W] or [N,C], got " + shape_str(x.shape()));
  expect_same_device("batch_norm", {&x, &gamma, &beta, &running_mean, &running_var});
  BatchNormShape p;
  p.n = (int)x.dim(0); p.c = (int)x.dim(1);
  p.hw = x.ndim() == 4 ? (int)(x.dim(2) * x.dim(3)) : 1;
  for (const Tensor* t : std::initializer_list<const Tensor*>{&gamma, &beta, &running_mean, &running_var})
    if (t->ndim() != 1 || t->dim(0) != p.c)
      throw Error("batch_norm: parameter of shape " + shape_str(t->shape()) +
                  " does not match input " + shape_str(x.shape()));
  return p;
}

void expect_batch_statistics(const BatchNormShape& p, const Tensor& x) {
  if ((int64_t)p.n * p.hw < 2)
    throw Error("batch_norm: training needs more than one value per channel, got input " +
                shape_str(x.shape()));
}

}  // namespace

Tensor batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                  Tensor& running_var, bool training, float momentum, float eps) {
  const BatchNormShape p = batch_norm_shape(x, gamma, beta, running_mean, running_var);
  Device d = x.device();
  Tensor y = empty_like(x);
  if (!training) {
    EMOTUNE_KERNEL(d, batch_norm_forward_eval)(p, x.data(), gamma.data(), beta.data(),
                                               running_mean.data(), running_var.data(), eps, y.data());
    if (needs_grad({&gamma, &beta}))
      throw Error("batch_norm: parameter gradients through eval mode are not supported; train in "
                  "training mode or wrap inference in NoGradGuard");
    if (needs_grad({&x})) {
      // Eval mode is per channel y = x s + t with s = gamma / sqrt(running_var + eps), so dx = g s:
      // the eval forward itself applied to g with a zero mean and a zero beta. Input gradients
      // only (explanations: layers/gradcam.h); the parameters must not require grad here.
      Tensor gs = gamma.detach(), rv = running_var.detach();
      record(y, "batch_norm_eval", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
        Tensor zeros = Tensor::zeros({p.c}, d), dx = Tensor::empty(g.shape(), d);
        EMOTUNE_KERNEL(d, batch_norm_forward_eval)(p, g.data(), gs.data(), zeros.data(), zeros.data(),
                                                   rv.data(), eps, dx.data());
        return {dx};
      });
    }
    return y;
  }
  expect_batch_statistics(p, x);
  Tensor mean = Tensor::empty({p.c}, d), invstd = Tensor::empty({p.c}, d);
  EMOTUNE_KERNEL(d, batch_norm_forward_train)(p, x.data(), gamma.data(), beta.data(), eps, momentum,
                                              running_mean.data(), running_var.data(), y.data(),
                                              mean.data(), invstd.data());
  if (needs_grad({&x, &gamma, &beta})) {
    Tensor xs = x.detach(), gs = gamma.detach();
    record(y, "batch_norm", {x, gamma, beta}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = Tensor::empty(xs.shape(), d);
      Tensor dgamma = Tensor::empty({p.c}, d), dbeta = Tensor::empty({p.c}, d);
      EMOTUNE_KERNEL(d, batch_norm_backward)(p, xs.data(), g.data(), gs.data(), mean.data(),
                                             invstd.data(), dx.data(), dgamma.data(), dbeta.data());
      return {dx, dgamma, dbeta};
    });
  }
  return y;
}

// The fused kernels keep relu's output y for backward (its mask, y > 0, is relu_backward's x > 0
// on batch_norm's output) instead of batch_norm's output, which is never written.
Tensor batch_norm_relu(const Tensor& x, const Tensor& gamma, const Tensor& beta, Tensor& running_mean,
                       Tensor& running_var, bool training, float momentum, float eps) {
  const BatchNormShape p = batch_norm_shape(x, gamma, beta, running_mean, running_var);
  Device d = x.device();
  const KernelTable& k = kernel_table(d);
  if (!training || !k.batch_norm_relu_forward_train || !k.batch_norm_relu_backward)
    return relu(batch_norm(x, gamma, beta, running_mean, running_var, training, momentum, eps));
  expect_batch_statistics(p, x);
  Tensor y = empty_like(x);
  Tensor mean = Tensor::empty({p.c}, d), invstd = Tensor::empty({p.c}, d);
  k.batch_norm_relu_forward_train(p, x.data(), gamma.data(), beta.data(), eps, momentum, running_mean.data(),
                                  running_var.data(), y.data(), mean.data(), invstd.data());
  if (needs_grad({&x, &gamma, &beta})) {
    Tensor xs = x.detach(), ys = y.detach(), gs = gamma.detach();
    record(y, "batch_norm_relu", {x, gamma, beta}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = Tensor::empty(xs.shape(), d);
      Tensor dgamma = Tensor::empty({p.c}, d), dbeta = Tensor::empty({p.c}, d);
      EMOTUNE_KERNEL(d, batch_norm_relu_backward)(p, xs.data(), ys.data(), g.data(), gs.data(), mean.data(),
                                                  invstd.data(), dx.data(), dgamma.data(), dbeta.data());
      return {dx, dgamma, dbeta};
    });
  }
  return y;
}

// ---------------------------------------------------------------- dropout
Tensor dropout(const Tensor& x, float p, bool training, uint64_t seed, uint64_t offset) {
  if (!(p >= 0.0f && p < 1.0f))
    throw Error("dropout: rate must be in [0, 1), got " + std::to_string(p));
  if (!training || p == 0.0f) return x;
  Device d = x.device();
  Tensor y = empty_like(x);
  int64_t n = x.numel();
  EMOTUNE_KERNEL(d, dropout_forward)(n, x.data(), p, seed, offset, y.data());
  if (needs_grad({&x})) {
    record(y, "dropout", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = Tensor::empty(g.shape(), d);
      EMOTUNE_KERNEL(d, dropout_backward)(n, g.data(), p, seed, offset, dx.data());
      return {dx};
    });
  }
  return y;
}

// ---------------------------------------------------------------- relu, linear
Tensor relu(const Tensor& x) {
  Device d = x.device();
  Tensor y = empty_like(x);
  EMOTUNE_KERNEL(d, relu_forward)(x.numel(), x.data(), y.data());
  if (needs_grad({&x})) {
    Tensor xs = x.detach();
    record(y, "relu", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = Tensor::empty(g.shape(), d);
      EMOTUNE_KERNEL(d, relu_backward)(g.numel(), xs.data(), g.data(), dx.data());
      return {dx};
    });
  }
  return y;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b) {
  expect_ndim(x, 2, "linear", "input");
  expect_ndim(w, 2, "linear", "weight");
  expect_same_device("linear", {&x, &w, &b});
  if (x.dim(1) != w.dim(1))
    throw Error("linear: input " + shape_str(x.shape()) + " does not match weight " +
                shape_str(w.shape()) + " (expected " + std::to_string(w.dim(1)) + " features)");
  if (b.defined() && (b.ndim() != 1 || b.dim(0) != w.dim(0)))
    throw Error("linear: bias " + shape_str(b.shape()) + " does not match weight " +
                shape_str(w.shape()));
  LinearShape p{(int)x.dim(0), (int)w.dim(1), (int)w.dim(0)};
  Device d = x.device();
  Tensor y = Tensor::empty({p.n, p.out}, d);
  EMOTUNE_KERNEL(d, linear_forward)(p, x.data(), w.data(), b.defined() ? b.data() : nullptr, y.data());
  if (needs_grad({&x, &w, &b})) {
    Tensor xs = x.detach(), ws = w.detach();
    bool gx = x.requires_grad(), gw = w.requires_grad(), gb = b.defined() && b.requires_grad();
    record(y, "linear", {x, w, b}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = gx ? Tensor::empty(xs.shape(), d) : Tensor();
      Tensor dw = gw ? Tensor::empty(ws.shape(), d) : Tensor();
      Tensor db = gb ? Tensor::empty({p.out}, d) : Tensor();
      EMOTUNE_KERNEL(d, linear_backward)(p, xs.data(), ws.data(), g.data(),
                                         gx ? dx.data() : nullptr, gw ? dw.data() : nullptr,
                                         gb ? db.data() : nullptr);
      return {dx, dw, db};
    });
  }
  return y;
}

// ---------------------------------------------------------------- add, mul, scale, reshape
Tensor add(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "add");
  check_same_device(a, b, "add");
  Device d = a.device();
  Tensor y = empty_like(a);
  EMOTUNE_KERNEL(d, add)(a.numel(), a.data(), b.data(), y.data());
  if (needs_grad({&a, &b}))
    record(y, "add", {a, b}, [](const Tensor& g) -> std::vector<Tensor> { return {g, g}; });
  return y;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  check_same_shape(a, b, "mul");
  check_same_device(a, b, "mul");
  Device d = a.device();
  Tensor y = empty_like(a);
  EMOTUNE_KERNEL(d, mul)(a.numel(), a.data(), b.data(), y.data());
  if (needs_grad({&a, &b})) {
    Tensor as = a.detach(), bs = b.detach();
    record(y, "mul", {a, b}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor da = empty_like(g), db = empty_like(g);
      EMOTUNE_KERNEL(d, mul)(g.numel(), g.data(), bs.data(), da.data());
      EMOTUNE_KERNEL(d, mul)(g.numel(), g.data(), as.data(), db.data());
      return {da, db};
    });
  }
  return y;
}

Tensor scale(const Tensor& x, float alpha) {
  Device d = x.device();
  Tensor y = empty_like(x);
  EMOTUNE_KERNEL(d, scale)(x.numel(), alpha, x.data(), y.data());
  if (needs_grad({&x}))
    record(y, "scale", {x}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = empty_like(g);
      EMOTUNE_KERNEL(d, scale)(g.numel(), alpha, g.data(), dx.data());
      return {dx};
    });
  return y;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  Tensor y = x.view(shape);
  if (needs_grad({&x})) {
    Shape in_shape = x.shape();
    record(y, "reshape", {x},
           [=](const Tensor& g) -> std::vector<Tensor> { return {g.view(in_shape)}; });
  }
  return y;
}

Tensor flatten(const Tensor& x) {
  if (x.ndim() < 1) throw Error("flatten: needs a batch dimension, got " + shape_str(x.shape()));
  int64_t n = x.dim(0);
  return reshape(x, {n, n ? x.numel() / n : 0});
}

// ---------------------------------------------------------------- losses
Tensor softmax_cross_entropy(const Tensor& logits, const Tensor& targets, const Tensor& class_weight,
                             float label_smoothing) {
  expect_ndim(logits, 2, "softmax_cross_entropy", "logits");
  check_same_shape(logits, targets, "softmax_cross_entropy (logits vs targets)");
  expect_same_device("softmax_cross_entropy", {&logits, &targets, &class_weight});
  if (class_weight.defined() && (class_weight.ndim() != 1 || class_weight.dim(0) != logits.dim(1)))
    throw Error("softmax_cross_entropy: class weights " + shape_str(class_weight.shape()) +
                " do not match logits " + shape_str(logits.shape()));
  if (!(label_smoothing >= 0.0f && label_smoothing < 1.0f))
    throw Error("softmax_cross_entropy: label smoothing must be in [0, 1)");
  CrossEntropyShape p{(int)logits.dim(0), (int)logits.dim(1)};
  Device d = logits.device();
  Tensor loss = Tensor::empty({1}, d), dlogits = empty_like(logits);
  EMOTUNE_KERNEL(d, softmax_cross_entropy)(p, logits.data(), targets.data(),
                                           class_weight.defined() ? class_weight.data() : nullptr,
                                           label_smoothing, loss.data(), dlogits.data());
  if (needs_grad({&logits}))
    record(loss, "softmax_cross_entropy", {logits}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dx = empty_like(dlogits);
      EMOTUNE_KERNEL(d, scale_dev)(dx.numel(), g.data(), dlogits.data(), dx.data());
      return {dx};
    });
  return loss;
}

Tensor l2_penalty(const Tensor& w, float lambda) {
  Device d = w.device();
  Tensor out = Tensor::empty({1}, d);
  EMOTUNE_KERNEL(d, sum_squares)(w.numel(), w.data(), out.data());
  EMOTUNE_KERNEL(d, scale)(1, lambda, out.data(), out.data());
  if (needs_grad({&w})) {
    Tensor ws = w.detach();
    record(out, "l2_penalty", {w}, [=](const Tensor& g) -> std::vector<Tensor> {
      Tensor dw = empty_like(ws);  // d/dw lambda sum w^2 = 2 lambda w, times the upstream scalar
      EMOTUNE_KERNEL(d, scale_dev)(ws.numel(), g.data(), ws.data(), dw.data());
      EMOTUNE_KERNEL(d, scale)(ws.numel(), 2.0f * lambda, dw.data(), dw.data());
      return {dw};
    });
  }
  return out;
}

}  // namespace emotune::ops
