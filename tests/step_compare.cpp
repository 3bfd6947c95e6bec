#include "tests/step_compare.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <sstream>

#include "engine/autograd.h"
#include "engine/ops.h"
#include "engine/rng.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"

namespace emotune::testing {

namespace {

constexpr int kClasses = 7, kSize = 48;
constexpr uint64_t kNetSeed = 42, kDropoutStep = 7;
constexpr float kSmoothing = 0.1f;

// One layer's kernel on identical inputs, relative to the tensor's largest element: a float sum
// of L random-sign terms errs ~eps sqrt(L) of its size, 2e-5 for the longest here (8*48*48), and
// the old whole-step comparison measured ~1e-5 through 9 compounded layers where nothing flipped.
// A wrong rule is O(1); the mutation check's 1e-3 is 5x the widest bound (1e-4 max + 1e-4 |want|).
constexpr double kLayerRel = 1e-4;
// The loss from identical logits and weights: a mean of 8 log-sum-exps and a sum of ~2e6 squares
// (the L2 penalty) in another order, a few ulps each.
constexpr double kLossRel = 1e-5;
// SGD from identical weights and gradients: an elementwise update of a few roundings, each
// within eps of the largest operand; 32 eps of the tensor's largest weight covers it.
constexpr double kUpdateRel = 32 * kFloatEps;

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

// u is a hash of the value itself (and of seed and purpose), not of its position: equal values
// get equal perturbations, as a device computes equal outputs from equal inputs. A per-position
// draw would break the exact ties BN makes from ReLU's zeros and flip pool argmaxes that no
// device would flip.
void jitter_values(std::vector<float>& v, double rel, uint64_t seed, uint64_t purpose) {
  if (rel == 0) return;
  const uint64_t key = splitmix64(seed * 0x100000001b3ull + purpose);
  for (float& x : v) {
    uint32_t bits;
    std::memcpy(&bits, &x, sizeof bits);
    const double u = (double)(splitmix64(key ^ bits) >> 11) * 0x1.0p-53 * 2.0 - 1.0;
    x = (float)(x * (1.0 + rel * u));
  }
}

std::string child_of(const std::string& param) { return param.substr(0, param.find('.')); }

const std::vector<float>* find_values(const std::vector<NamedValues>& list, const std::string& name) {
  for (const auto& nv : list)
    if (nv.name == name) return &nv.values;
  return nullptr;
}

double max_abs(const std::vector<float>& v) {
  double m = 0;
  for (float x : v) m = std::max(m, (double)std::fabs(x));
  return m;
}

// |got - want| <= atol + rtol |want| element by element, as allclose, with the worst ratio of the
// difference to its bound in `excess`.
Check close_check(const std::string& layer, const std::string& what, const std::vector<float>& got,
                  const std::vector<float>& want, double atol, double rtol) {
  Check c;
  c.layer = layer;
  c.what = what;
  if (got.size() != want.size()) {
    c.ok = false;
    c.excess = std::numeric_limits<double>::infinity();
    c.message = "sizes differ: " + std::to_string(got.size()) + " vs " + std::to_string(want.size());
    return c;
  }
  atol = std::max(atol, (double)std::numeric_limits<float>::min());
  for (size_t i = 0; i < got.size(); ++i) {
    const double d = std::fabs((double)got[i] - (double)want[i]);
    const double r = d / (atol + rtol * std::fabs((double)want[i]));
    if (!(r <= c.excess)) c.excess = std::isnan(r) ? std::numeric_limits<double>::infinity() : r;
  }
  c.ok = c.excess <= 1.0;
  if (!c.ok) c.message = allclose(got, want, atol, rtol).message;
  return c;
}

Check relative_check(const std::string& layer, const std::string& what, const std::vector<float>& got,
                     const std::vector<float>& want, double rel) {
  return close_check(layer, what, got, want, rel * max_abs(want), rel);
}

// The zero-in-theory rule (header): per element k, |got - want| <= L * eps * sum_l |g[l, k]|,
// g the layer's output gradient with channels on axis 1, L the number of terms summed per channel.
Check zero_in_theory_check(const std::string& layer, const std::string& what, const std::vector<float>& got,
                           const std::vector<float>& want, const Shape& out_shape,
                           const std::vector<float>& grad_output) {
  Check c;
  c.layer = layer;
  c.what = what + " (zero in theory)";
  const int64_t channels = out_shape.size() > 1 ? out_shape[1] : 1;
  int64_t inner = 1;
  for (size_t d = 2; d < out_shape.size(); ++d) inner *= out_shape[d];
  if ((int64_t)got.size() != channels || want.size() != got.size()) {
    c.ok = false;
    c.message = "bias of " + std::to_string(got.size()) + " elements for " + shape_str(out_shape);
    return c;
  }
  std::vector<double> mass((size_t)channels, 0.0);
  for (size_t i = 0; i < grad_output.size(); ++i)
    mass[(size_t)((int64_t)i / inner % channels)] += std::fabs(grad_output[i]);
  const double terms = (double)grad_output.size() / (double)channels;
  std::ostringstream worst;
  for (int64_t k = 0; k < channels; ++k) {
    const double bound = std::max(terms * kFloatEps * mass[(size_t)k], (double)std::numeric_limits<float>::min());
    const double r = std::fabs((double)got[(size_t)k] - (double)want[(size_t)k]) / bound;
    if (!(r <= c.excess)) {
      c.excess = std::isnan(r) ? std::numeric_limits<double>::infinity() : r;
      worst.str("");
      worst << "worst at [" << k << "]: got " << got[(size_t)k] << " want " << want[(size_t)k] << " bound " << bound
            << " (" << terms << " terms, sum |g| " << mass[(size_t)k] << ")";
    }
  }
  c.ok = c.excess <= 1.0;
  if (!c.ok) c.message = worst.str();
  return c;
}

// Parameters whose gradient is exactly zero in theory: the bias of a child whose output goes
// straight into a training-mode BatchNorm2d (which removes any per-channel shift).
bool zero_in_theory(const Sequential& net, size_t child, const std::string& param) {
  const auto& kids = net.children();
  if (child + 1 >= kids.size() || param != kids[child].name + ".bias") return false;
  const auto* bn = dynamic_cast<const BatchNorm2d*>(kids[child + 1].module.get());
  return bn && bn->training();
}

void add(StepComparison& c, Check check, std::string* first) {
  if (!check.ok) {
    c.ok = false;
    if (first && first->empty()) *first = check.layer;
  }
  c.checks.push_back(std::move(check));
}

}  // namespace

std::vector<float> step_images(const StepSetup& s) {
  return random_vector((size_t)s.batch * kSize * kSize, s.input_seed, 0.0f, 1.0f);
}

std::vector<float> step_targets(const StepSetup& s) {
  std::vector<float> t((size_t)s.batch * kClasses, 0.0f);
  for (int i = 0; i < s.batch; ++i) t[(size_t)i * kClasses + (i * 3) % kClasses] = 1.0f;
  return t;
}

std::shared_ptr<Sequential> step_network(const StepSetup& s) {
  auto net = make_network(s.arch, kClasses, kNetSeed);
  net->set_step(kDropoutStep);
  return net;
}

StepRecord record_step(const StepSetup& s, Device device, const MakeOptimizer& make_optimizer,
                       const Jitter& jitter, const Mutation& mutation) {
  auto net = step_network(s);
  net->to(device);
  const auto& kids = net->children();
  StepRecord r;
  std::vector<Tensor> ins(kids.size()), outs(kids.size());
  Shape shape{s.batch, 1, kSize, kSize};
  std::vector<float> x = step_images(s);
  jitter_values(x, jitter.input, jitter.seed, 0);
  // Each child reads a fresh leaf holding the previous output, so that its input gradient can be
  // read and the chain can be cut between children; the image itself needs no gradient (as in
  // training, conv1's backward_input never runs).
  for (size_t i = 0; i < kids.size(); ++i) {
    LayerRecord layer;
    layer.name = kids[i].name;
    layer.in_shape = shape;
    layer.input = x;
    ins[i] = Tensor::from_vector(shape, x, device);
    if (i > 0) ins[i].set_requires_grad(true);
    outs[i] = kids[i].module->forward(ins[i]);
    layer.out_shape = shape = outs[i].shape();
    x = outs[i].to_vector();
    jitter_values(x, jitter.activations, jitter.seed, 1 + 4 * i);
    layer.output = x;
    r.layers.push_back(std::move(layer));
  }
  r.logits = x;
  Tensor logits = Tensor::from_vector(shape, x, device).set_requires_grad(true);
  Tensor targets = Tensor::from_vector({s.batch, kClasses}, step_targets(s), device);
  Tensor loss = ops::softmax_cross_entropy(logits, targets, Tensor(), kSmoothing);
  Tensor penalty = net->penalty();
  if (penalty.defined()) loss = ops::add(loss, penalty);
  r.loss = loss.item();
  loss.backward();  // the logits' gradient, and the penalty's share of the parameter gradients
  std::vector<float> g = logits.grad().to_vector();
  jitter_values(g, jitter.gradients, jitter.seed, 2);
  r.logits_grad = g;
  for (size_t i = kids.size(); i-- > 0;) {
    r.layers[i].grad_output = g;
    run_backward(outs[i], Tensor::from_vector(outs[i].shape(), g, device));
    if (i == 0) break;
    Tensor gin = ins[i].grad();
    if (!gin.defined()) throw Error("record_step: no gradient reached the input of " + kids[i].name);
    g = gin.to_vector();
    jitter_values(g, jitter.gradients, jitter.seed, 3 + 4 * i);
    if (kids[i].name == mutation.layer)
      for (float& v : g) v = (float)(v * mutation.factor + mutation.offset);
    r.layers[i].grad_input = g;
  }
  uint64_t purpose = 4 * kids.size() + 4;
  for (auto& p : net->parameters()) {
    Tensor pg = p.tensor.grad();
    if (!pg.defined()) {
      r.grads.push_back({p.name, {}});
      continue;
    }
    std::vector<float> v = pg.to_vector();
    jitter_values(v, jitter.gradients, jitter.seed, purpose++);
    if (p.name == mutation.parameter)
      for (float& e : v) e = (float)(e * mutation.factor + mutation.offset);
    p.tensor.set_grad(Tensor::from_vector(pg.shape(), v, device));  // what the optimizer reads
    r.grads.push_back({p.name, std::move(v)});
  }
  if (make_optimizer) {
    make_optimizer(net->parameters())->step(s.lr);
    for (auto& nt : net->state_dict()) r.state.push_back({nt.name, nt.tensor.to_vector()});
  }
  return r;
}

StepRecord run_step_whole(const StepSetup& s, Device device, const MakeOptimizer& make_optimizer) {
  auto net = step_network(s);
  net->to(device);
  Tensor x = Tensor::from_vector({s.batch, 1, kSize, kSize}, step_images(s), device);
  Tensor targets = Tensor::from_vector({s.batch, kClasses}, step_targets(s), device);
  Tensor loss = ops::softmax_cross_entropy(net->forward(x), targets, Tensor(), kSmoothing);
  Tensor penalty = net->penalty();
  if (penalty.defined()) loss = ops::add(loss, penalty);
  StepRecord r;
  r.loss = loss.item();
  loss.backward();
  for (auto& p : net->parameters()) {
    Tensor pg = p.tensor.grad();
    r.grads.push_back({p.name, pg.defined() ? pg.to_vector() : std::vector<float>()});
  }
  if (make_optimizer) {
    make_optimizer(net->parameters())->step(s.lr);
    for (auto& nt : net->state_dict()) r.state.push_back({nt.name, nt.tensor.to_vector()});
  }
  return r;
}

std::vector<std::string> bitwise_differences(const StepRecord& a, const StepRecord& b) {
  std::vector<std::string> out;
  auto scan = [&](const std::vector<NamedValues>& as, const std::vector<NamedValues>& bs) {
    for (const auto& x : as) {
      const std::vector<float>* y = find_values(bs, x.name);
      if (!y || y->size() != x.values.size() ||
          std::memcmp(y->data(), x.values.data(), x.values.size() * sizeof(float)) != 0)
        out.push_back(x.name);
    }
    for (const auto& y : bs)
      if (!find_values(as, y.name)) out.push_back(y.name);
  };
  scan(a.grads, b.grads);
  scan(a.state, b.state);
  return out;
}

StepComparison compare_step_layerwise(const StepSetup& s, const StepRecord& cand,
                                      const MakeOptimizer& make_optimizer) {
  auto net = step_network(s);
  const auto& kids = net->children();
  StepComparison c;
  if (cand.layers.size() != kids.size()) {
    add(c, {"network", "layer count", false, 0, std::to_string(cand.layers.size()) + " recorded, " +
                                               std::to_string(kids.size()) + " in " + s.arch}, &c.first_forward);
    return c;
  }
  // Forward: every child from the candidate's input.
  std::vector<Tensor> ins(kids.size()), outs(kids.size());
  for (size_t i = 0; i < kids.size(); ++i) {
    const LayerRecord& L = cand.layers[i];
    if (L.name != kids[i].name) {
      add(c, {L.name, "layer name", false, 0, "expected " + kids[i].name}, &c.first_forward);
      return c;
    }
    ins[i] = Tensor::from_vector(L.in_shape, L.input);
    if (i > 0) ins[i].set_requires_grad(true);
    outs[i] = kids[i].module->forward(ins[i]);
    add(c, relative_check(L.name, "forward output", L.output, outs[i].to_vector(), kLayerRel), &c.first_forward);
  }
  // The loss head from the candidate's logits: the loss, the logits' gradient, and the penalty's
  // share of the parameter gradients (so that they compare whole below).
  Tensor logits = Tensor::from_vector(cand.layers.back().out_shape, cand.logits).set_requires_grad(true);
  Tensor targets = Tensor::from_vector({s.batch, kClasses}, step_targets(s));
  Tensor loss = ops::softmax_cross_entropy(logits, targets, Tensor(), kSmoothing);
  Tensor penalty = net->penalty();
  if (penalty.defined()) loss = ops::add(loss, penalty);
  add(c, relative_check("loss", "value", {cand.loss}, {loss.item()}, kLossRel), &c.first_backward);
  loss.backward();
  add(c, relative_check("loss", "logits gradient", cand.logits_grad, logits.grad().to_vector(), kLayerRel),
      &c.first_backward);
  // Backward: every child from the candidate's upstream gradient, last child first.
  std::vector<ParamRef> params = net->parameters();
  for (size_t i = kids.size(); i-- > 0;) {
    const LayerRecord& L = cand.layers[i];
    run_backward(outs[i], Tensor::from_vector(L.out_shape, L.grad_output));
    for (const auto& p : params) {
      if (child_of(p.name) != L.name) continue;
      const std::vector<float>* got = find_values(cand.grads, p.name);
      const std::vector<float> want = p.tensor.grad().defined() ? p.tensor.grad().to_vector() : std::vector<float>();
      if (!got) {
        add(c, {L.name, p.name + " gradient", false, 0, "not recorded"}, &c.first_backward);
        continue;
      }
      if (zero_in_theory(*net, i, p.name))
        add(c, zero_in_theory_check(L.name, p.name + " gradient", *got, want, L.out_shape, L.grad_output),
            &c.first_backward);
      else
        add(c, relative_check(L.name, p.name + " gradient", *got, want, kLayerRel), &c.first_backward);
    }
    if (i > 0) {
      const Tensor gin = ins[i].grad();  // undefined only if the replay is broken: a size mismatch below
      const std::vector<float> want = gin.defined() ? gin.to_vector() : std::vector<float>();
      add(c, relative_check(L.name, "input gradient", L.grad_input, want, kLayerRel), &c.first_backward);
    }
  }
  // The optimizer from the candidate's gradients and the same initial weights; running
  // statistics were updated by the forward replay above, from the candidate's inputs.
  if (make_optimizer && !cand.state.empty()) {
    for (auto& p : params) {
      const std::vector<float>* g = find_values(cand.grads, p.name);
      if (g && !g->empty()) p.tensor.set_grad(Tensor::from_vector(p.tensor.shape(), *g));
      else p.tensor.zero_grad();
    }
    make_optimizer(params)->step(s.lr);
    for (auto& nt : net->state_dict()) {
      const std::vector<float>* got = find_values(cand.state, nt.name);
      const bool is_param =
          std::any_of(params.begin(), params.end(), [&](const ParamRef& p) { return p.name == nt.name; });
      if (!got) {
        add(c, {child_of(nt.name), nt.name + " after the step", false, 0, "not recorded"}, nullptr);
        continue;
      }
      add(c, relative_check(child_of(nt.name), nt.name + " after the step", *got, nt.tensor.to_vector(),
                            is_param ? kUpdateRel : kLayerRel),
          nullptr);
    }
  }
  return c;
}

std::string StepComparison::summary() const {
  std::ostringstream os;
  for (const Check& k : checks)
    if (!k.ok) os << k.layer << ": " << k.what << " off by " << k.excess << "x its bound; " << k.message << "\n";
  os << "first forward divergence: " << (first_forward.empty() ? "none" : first_forward)
     << "; first backward divergence (from the loss down): " << (first_backward.empty() ? "none" : first_backward);
  return os.str();
}

std::vector<std::string> zero_in_theory_parameters(const StepSetup& s) {
  auto net = step_network(s);
  std::vector<std::string> out;
  for (const auto& p : net->parameters()) {
    const auto& kids = net->children();
    for (size_t i = 0; i < kids.size(); ++i)
      if (child_of(p.name) == kids[i].name && zero_in_theory(*net, i, p.name)) out.push_back(p.name);
  }
  return out;
}

EndToEnd compare_step_end_to_end(const StepRecord& got, const StepRecord& want) {
  EndToEnd e;
  for (const auto& w : want.grads) {
    const std::vector<float>* g = find_values(got.grads, w.name);
    const double scale = max_abs(w.values);
    Check k = g ? close_check("", w.name, *g, w.values, 1e-3 * scale + 1e-7, 1e-3)
                : Check{"", w.name, false, std::numeric_limits<double>::infinity(), "missing"};
    if (!k.ok) e.failed.push_back(w.name);
    if (k.excess > e.worst_excess) {
      e.worst_excess = k.excess;
      e.worst_name = w.name;
    }
  }
  return e;
}

Flips decision_flips(const StepSetup& s, const StepRecord& a, const StepRecord& b) {
  auto net = step_network(s);
  const auto& kids = net->children();
  Flips f;
  if (a.layers.size() != kids.size() || b.layers.size() != kids.size()) return f;
  for (size_t i = 0; i < kids.size(); ++i) {
    const LayerRecord &la = a.layers[i], &lb = b.layers[i];
    if (la.input.size() != lb.input.size()) continue;
    int64_t n = 0;
    if (dynamic_cast<const ReLU*>(kids[i].module.get())) {
      for (size_t k = 0; k < la.input.size(); ++k) n += (la.input[k] > 0.0f) != (lb.input[k] > 0.0f);
      f.relu += n;
    } else if (dynamic_cast<const MaxPool2d*>(kids[i].module.get()) && la.in_shape.size() == 4) {
      const int64_t planes = la.in_shape[0] * la.in_shape[1], h = la.in_shape[2], w = la.in_shape[3];
      const int64_t oh = la.out_shape[2], ow = la.out_shape[3], kh = h / oh, kw = w / ow;
      // First index of the window maximum, scanning rows then columns (the kernels' tie rule).
      auto argmax = [&](const std::vector<float>& x, int64_t plane, int64_t oy, int64_t ox) {
        int64_t best = -1;
        for (int64_t dy = 0; dy < kh; ++dy)
          for (int64_t dx = 0; dx < kw; ++dx) {
            const int64_t idx = (plane * h + oy * kh + dy) * w + ox * kw + dx;
            if (best < 0 || x[(size_t)idx] > x[(size_t)best]) best = idx;
          }
        return best;
      };
      for (int64_t pl = 0; pl < planes; ++pl)
        for (int64_t oy = 0; oy < oh; ++oy)
          for (int64_t ox = 0; ox < ow; ++ox) n += argmax(la.input, pl, oy, ox) != argmax(lb.input, pl, oy, ox);
      f.pool += n;
    }
    if (n > 0 && f.first.empty()) f.first = la.name + ": " + std::to_string(n) + " decision(s)";
  }
  return f;
}

}  // namespace emotune::testing
