// oracle_dump: what emotune computes, written out for an independent framework to recompute
// (tests/oracle/keras_oracle.py, driven by tests/oracle/run.sh). CPU only, in every build.
//
//   oracle_dump step  --arch paper|vgg --init keras|torch --out FILE.safetensors [--data PATH]
//       From one initialisation: the initial state, `steps` batches (x.K, t.K) and one eval batch
//       (xe), the binary dropout masks every Dropout child drew at every step (mask.CHILD.K,
//       the module's own Philox masks, NCHW / NC), every child's train-mode output at step 0
//       (act.CHILD), the loss terms and every parameter gradient of step 0 (grad.NAME); then, for
//       Adam and for SGD with Nesterov momentum, each from a fresh copy of the same weights: the
//       state after 1 and after `steps` steps (OPT.N.NAME), the per-step losses (OPT.loss) and the
//       eval-mode logits on xe (OPT.N.eval_logits). Hyperparameters go into the metadata.
//       --precision bf16: step 0 in bf16 products, child by child, with the gradient at every
//       child's output (dact.CHILD), the dropout masks of step 0, and each conv's forms
//       (kernels/conv2d.h) in the metadata; no optimizer steps (the bf16 check is local).
//   oracle_dump curve --arch paper --init keras|torch --data PATH --out DIR [--steps 1500] ...
//       The seed's recipe (Adam, batch 16, no augmentation) for `steps` steps from one
//       initialisation, as `emotune train` runs it (same loader, same step order), logging the
//       window loss and accuracy every `every` steps and the accuracy on a fixed PublicTest subset
//       at `val_every`. Writes DIR/init-INIT.safetensors, DIR/order-INIT.i32 (the sample index of
//       every step's batch), the uint8 images and labels both splits (train.u8, train-labels.u8,
//       val.u8, val-labels.u8) and DIR/emotune-INIT.csv, so Keras can replay the same run.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "apps/runtime_env.h"
#include "datasets/dataset.h"
#include "datasets/loader.h"
#include "datasets/sampler.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/ops.h"
#include "engine/optim.h"
#include "engine/rng.h"
#include "engine/runtime.h"
#include "kernels/conv2d.h"
#include "kernels/runtime.h"
#include "layers/layers.h"
#include "layers/nets/nets.h"

using namespace emotune;
namespace fs = std::filesystem;

namespace {

constexpr int kClasses = 7;

struct Sample {
  std::vector<float> x, t;  // [B,1,48,48], [B,7] one-hot
  std::vector<int> labels;
};

// Real faces when a data set is given (a seeded draw from its Training split), else a smooth
// synthetic pattern per image with random labels: either way the tool writes what it used.
std::vector<Sample> make_batches(const std::string& data, int batch, int count, uint64_t seed) {
  const int px = kFacePixels;
  std::vector<Sample> out(count);
  Dataset d;
  std::vector<uint32_t> order;
  if (!data.empty()) {
    LoadOptions lo;
    lo.splits = {Split::training};
    d = load_dataset(data, lo);
    order = epoch_order(d.size(), true, seed, 0);
    if (order.size() < (size_t)batch * count) throw Error(data + ": too few Training samples for the oracle");
  }
  Rng rng(derive_seed(seed, 77));
  Preprocess pre;
  for (int k = 0; k < count; ++k) {
    Sample& s = out[k];
    s.x.resize((size_t)batch * px);
    s.t.assign((size_t)batch * kClasses, 0.0f);
    for (int i = 0; i < batch; ++i) {
      int label;
      if (!data.empty()) {
        size_t j = order[(size_t)k * batch + i];
        pre.apply(d.image(j), s.x.data() + (size_t)i * px);
        label = d.labels[j];
      } else {
        const float a = rng.uniform(0.02f, 0.3f), b = rng.uniform(0.02f, 0.3f), ph = rng.uniform(0, 6.3f);
        for (int p = 0; p < px; ++p)
          s.x[(size_t)i * px + p] = 0.5f + 0.35f * std::sin(a * (p / 48) + b * (p % 48) + ph) + 0.1f * rng.uniform(-1, 1);
        label = (int)rng.below(kClasses);
      }
      s.labels.push_back(label);
      s.t[(size_t)i * kClasses + label] = 1.0f;
    }
  }
  return out;
}

Tensor batch_tensor(const std::vector<float>& x) {
  return Tensor::from_vector({(int64_t)(x.size() / kFacePixels), 1, 48, 48}, x);
}

// One training forward, child by child exactly as Sequential::forward; records each child's
// output and, for Dropout children, the binary mask it drew (its forward applied to ones).
struct Forward {
  Tensor logits;
  std::vector<NamedTensor> acts, masks, kinks;
  std::vector<Tensor> ins, outs;  // segmented only
  std::string forms;              // {"CONV": [forward, backward-input, backward-weight], ...}
};

// A ReLU input within rounding of 0 (|x| <= kKinkFrac max|x|; the two frameworks' forward
// outputs agree to ~1e-5 of the scale) may land on the other side of the kink in another
// framework, which changes whole gradient rows. Such inputs are listed as [n, 2] rows
// (flat NCHW index, 1 if x > 0 else 0) so the oracle can take emotune's side there, as it takes
// emotune's dropout masks.
constexpr float kKinkFrac = 1e-4f;

Tensor kink_list(const Tensor& x) {
  std::vector<float> v = x.to_vector(), rows;
  float mx = 0;
  for (float a : v) mx = std::max(mx, std::fabs(a));
  for (size_t i = 0; i < v.size(); ++i)
    if (std::fabs(v[i]) <= kKinkFrac * mx) {
      if (i >= (1u << 24)) throw Error("kink index beyond float32's exact integers");
      rows.push_back((float)i);
      rows.push_back(v[i] > 0 ? 1.0f : 0.0f);
    }
  return Tensor::from_vector({(int64_t)rows.size() / 2, 2}, rows);
}

// The same for 2x2 max pooling: windows whose two largest inputs are within kKinkFrac max|x| of
// each other (exact ties included: flat image regions give them) may route the gradient to
// another element in another framework. Listed as [n, 2] rows (flat NCHW output index, the
// element emotune routes to, 0..3 row-major in the window: the first strict maximum, the CPU
// kernel's rule, kernels/cpu/max_pool2d_ref.h).
Tensor pool_tie_list(const Tensor& x) {
  const auto& s = x.shape();
  const int64_t n = s[0], c = s[1], h = s[2], w = s[3], ho = h / 2, wo = w / 2;
  std::vector<float> v = x.to_vector(), rows;
  float mx = 0;
  for (float a : v) mx = std::max(mx, std::fabs(a));
  for (int64_t p = 0; p < n * c; ++p)
    for (int64_t i = 0; i < ho; ++i)
      for (int64_t j = 0; j < wo; ++j) {
        float e[4];
        for (int k = 0; k < 4; ++k) e[k] = v[(size_t)((p * h + 2 * i + k / 2) * w + 2 * j + k % 2)];
        int best = 0;
        for (int k = 1; k < 4; ++k)
          if (e[k] > e[best]) best = k;
        float second = -INFINITY;
        for (int k = 0; k < 4; ++k)
          if (k != best) second = std::max(second, e[k]);
        if (e[best] - second <= kKinkFrac * mx) {
          rows.push_back((float)((p * ho + i) * wo + j));
          rows.push_back((float)best);
        }
      }
  return Tensor::from_vector({(int64_t)rows.size() / 2, 2}, rows);
}

// segmented: every child's input is a leaf of its own (a detached copy of the previous output
// that requires grad), kept in f.ins with the child's output in f.outs, so that
// backward_segmented can write out the gradient at every child's output.
Forward forward_recorded(Sequential& net, const Tensor& x, bool record_acts, bool segmented = false) {
  Forward f;
  Tensor y = x;
  for (const auto& c : net.children()) {
    if (segmented) {
      y = y.detach();
      y.set_requires_grad(true);
      f.ins.push_back(y);
    }
    if (dynamic_cast<Dropout*>(c.module.get())) {
      NoGradGuard guard;
      Tensor kept = c.module->forward(Tensor::full(y.shape(), 1.0f));
      std::vector<float> m = kept.to_vector();
      for (float& v : m) v = v != 0.0f ? 1.0f : 0.0f;
      f.masks.push_back({c.name, Tensor::from_vector(y.shape(), m)});
    }
    if (dynamic_cast<ReLU*>(c.module.get())) f.kinks.push_back({c.name, kink_list(y)});
    if (dynamic_cast<MaxPool2d*>(c.module.get())) f.kinks.push_back({c.name, pool_tie_list(y)});
    if (const auto* conv = dynamic_cast<const Conv2d*>(c.module.get())) {
      const auto& xs = y.shape();
      const int k = conv->kernel(), pad = conv->pad(), st = conv->stride();
      const Conv2dShape p{(int)xs[0], (int)xs[1], (int)xs[2], (int)xs[3], (int)conv->weight.shape()[0], k, k, pad, pad, st, st};
      const Conv2dCpuForms cf = conv2d_cpu_forms(p);
      f.forms += (f.forms.empty() ? "{" : ", ") + ("\"" + c.name + "\": [\"" + cf.forward + "\", \"" +
                                                    cf.backward_input + "\", \"" + cf.backward_weight + "\"]");
    }
    y = c.module->forward(y);
    if (segmented) f.outs.push_back(y);
    if (record_acts) f.acts.push_back({"act." + c.name, y.detach().clone()});
  }
  f.logits = y;
  f.forms += f.forms.empty() ? "{}" : "}";
  return f;
}

struct StepLoss {
  Tensor ce, penalty, total;
};

StepLoss loss_of(Sequential& net, const Tensor& logits, const std::vector<float>& t) {
  StepLoss l;
  l.ce = ops::softmax_cross_entropy(logits, Tensor::from_vector({(int64_t)(t.size() / kClasses), kClasses}, t),
                                    Tensor(), 0.0f);
  l.penalty = net.penalty();
  l.total = l.penalty.defined() ? ops::add(l.ce, l.penalty) : l.ce;
  return l;
}

std::vector<NamedTensor> cloned_state(Sequential& net, const std::string& prefix) {
  std::vector<NamedTensor> out;
  for (auto& nt : net.state_dict()) out.push_back({prefix + nt.name, nt.tensor.detach().clone()});
  return out;
}

// The backward of a segmented forward, child by child from the last: `g` is the gradient at the
// last child's output. Returns ("dact.CHILD", the gradient at that child's output) for every
// child. The parameters' gradients accumulate as in one backward over the whole net: each child's
// backward runs once, on the same output gradient.
std::vector<NamedTensor> backward_segmented(Sequential& net, const Forward& f, Tensor g) {
  std::vector<NamedTensor> out;
  for (size_t i = f.outs.size(); i-- > 0;) {
    out.push_back({"dact." + net.children()[i].name, g.clone()});
    run_backward(f.outs[i], g);
    g = f.ins[i].grad();
    if (!g.defined()) throw Error("segmented backward: no gradient reached the input of " + net.children()[i].name);
  }
  return out;
}

Tensor eval_logits(Sequential& net, const Tensor& xe) {
  NoGradGuard guard;
  net.set_training(false);
  Tensor z = net.forward(xe).detach().clone();
  net.set_training(true);
  return z;
}

void append(std::vector<NamedTensor>& dst, std::vector<NamedTensor> src) {
  for (auto& t : src) dst.push_back(std::move(t));
}

int run_step(const std::string& arch, const std::string& init, const std::string& data, const std::string& out,
             int batch, int steps, uint64_t seed, const std::string& precision) {
  // Small steps: from glorot weights the loss surface is steep enough (loss 5-12) that larger ones
  // amplify float32 rounding ~10x per step (seen with Adam 1e-3 / SGD 1e-3), and the two runs part.
  // The optimizers' fixed settings; the learning rate is passed to each step (engine/optim.h).
  const float sgd_lr = 1e-4f, adam_lr = 1e-4f;  // adam: the seed's
  SgdOptions sgd;
  sgd.momentum = 0.9f;
  sgd.nesterov = true;
  const AdamOptions adam;
  std::vector<Sample> batches = make_batches(data, batch, steps + 1, seed);
  const Tensor xe = batch_tensor(batches[steps].x);  // never trained on
  std::vector<NamedTensor> file;
  std::map<std::string, std::string> meta = {
      {"arch", arch}, {"init", init}, {"batch", std::to_string(batch)}, {"steps", std::to_string(steps)},
      {"data", data.empty() ? "synthetic" : data}, {"precision", precision},
      {"bf16_kernel", precision == "bf16" ? runtime_bf16_path() : "none"},
      {"bf16_min_reduction", std::to_string(kBf16MinReduction)},
      {"adam", "{\"lr\":" + std::to_string(adam_lr) + ",\"beta1\":" + std::to_string(adam.beta1) +
                   ",\"beta2\":" + std::to_string(adam.beta2) + ",\"eps\":1e-7}"},
      {"sgd", "{\"lr\":" + std::to_string(sgd_lr) + ",\"momentum\":" + std::to_string(sgd.momentum) + ",\"nesterov\":true}"}};

  auto net = make_network(arch, kClasses, seed, init);
  append(file, cloned_state(*net, "init."));
  std::string children;
  for (const auto& c : net->children()) children += (children.empty() ? "" : ",") + c.name;
  meta["children"] = children;
  for (int k = 0; k < steps; ++k) {
    file.push_back({"x." + std::to_string(k), batch_tensor(batches[k].x)});
    file.push_back({"t." + std::to_string(k), Tensor::from_vector({batch, kClasses}, batches[k].t)});
  }
  file.push_back({"xe", xe});

  // Step 0: activations, loss terms, gradients. In bf16 child by child (segmented), to write out
  // the gradient at every child's output as well (dact.CHILD): the bf16 check compares each layer
  // from emotune's own inputs (keras_oracle.py, run_check_bf16).
  const bool bf16 = precision == "bf16";
  net->set_training(true);
  net->set_step(0);
  Forward f = forward_recorded(*net, batch_tensor(batches[0].x), true, bf16);
  Tensor logits = f.logits;
  if (bf16) {
    logits = logits.detach();
    logits.set_requires_grad(true);
  }
  StepLoss l = loss_of(*net, logits, batches[0].t);
  l.total.backward();
  if (bf16) append(file, backward_segmented(*net, f, logits.grad()));
  meta["conv_forms"] = f.forms;  // the bf16 check bounds each product by its form
  append(file, std::move(f.acts));
  for (auto& kk : f.kinks) file.push_back({"kink.step0." + kk.name + ".0", kk.tensor});
  file.push_back({"loss.ce", l.ce.detach().clone()});
  file.push_back({"loss.total", l.total.detach().clone()});
  if (l.penalty.defined()) file.push_back({"loss.penalty", l.penalty.detach().clone()});
  for (auto& p : net->parameters()) file.push_back({"grad." + p.name, p.tensor.grad().clone()});
  // The state after step 0's forward: BN running statistics moved once.
  append(file, cloned_state(*net, "fwd0."));

  // The optimizers' N steps: the fp32 check compares them; the bf16 check is local to step 0 (its
  // masks from here), the optimizer being fp32 code either way.
  if (bf16)
    for (auto& m : f.masks) file.push_back({"mask." + m.name + ".0", m.tensor});
  const std::vector<std::string> optimizers = bf16 ? std::vector<std::string>{} : std::vector<std::string>{"adam", "sgd"};
  for (const std::string& opt_name : optimizers) {
    auto fresh = make_network(arch, kClasses, seed, init);
    std::unique_ptr<Optimizer> opt;
    if (opt_name == "adam") opt = std::make_unique<Adam>(fresh->parameters(), adam);
    else opt = std::make_unique<Sgd>(fresh->parameters(), sgd);
    std::vector<float> losses;
    fresh->set_training(true);
    for (int k = 0; k < steps; ++k) {
      fresh->set_step((uint64_t)k);
      Forward fk = forward_recorded(*fresh, batch_tensor(batches[k].x), false);
      if (opt_name == "adam")
        for (auto& m : fk.masks) file.push_back({"mask." + m.name + "." + std::to_string(k), m.tensor});
      for (auto& kk : fk.kinks) file.push_back({"kink." + opt_name + "." + kk.name + "." + std::to_string(k), kk.tensor});
      StepLoss lk = loss_of(*fresh, fk.logits, batches[k].t);
      losses.push_back(lk.total.item());
      opt->zero_grad();
      lk.total.backward();
      opt->step(opt_name == "adam" ? adam_lr : sgd_lr);
      if (k == 0 || k == steps - 1) {
        const std::string pre = opt_name + "." + std::to_string(k + 1) + ".";
        append(file, cloned_state(*fresh, pre));
        file.push_back({pre + "eval_logits", eval_logits(*fresh, xe)});
      }
    }
    file.push_back({opt_name + ".loss", Tensor::from_vector({steps}, losses)});
  }
  save_safetensors(out, file, meta);
  std::printf("oracle_dump: %s (%s init, %s data): %zu tensors -> %s\n", arch.c_str(), init.c_str(),
              meta["data"].c_str(), file.size(), out.c_str());
  return 0;
}

void write_bytes(const fs::path& p, const void* data, size_t n) {
  std::ofstream f(p, std::ios::binary);
  f.write((const char*)data, (std::streamsize)n);
  if (!f) throw Error("cannot write " + p.string());
}

// Mean loss and accuracy of `net` in eval mode over `val`, in batches of 256.
std::pair<double, double> evaluate(Sequential& net, const Dataset& val) {
  NoGradGuard guard;
  net.set_training(false);
  Preprocess pre;
  double loss = 0, correct = 0;
  for (size_t s = 0; s < val.size(); s += 256) {
    const int n = (int)std::min<size_t>(256, val.size() - s);
    std::vector<float> x((size_t)n * kFacePixels), t((size_t)n * kClasses, 0.0f);
    for (int i = 0; i < n; ++i) {
      pre.apply(val.image(s + i), x.data() + (size_t)i * kFacePixels);
      t[(size_t)i * kClasses + val.labels[s + i]] = 1.0f;
    }
    Tensor z = net.forward(batch_tensor(x));
    loss += ops::softmax_cross_entropy(z, Tensor::from_vector({n, kClasses}, t), Tensor(), 0.0f).item() * n;
    std::vector<float> zv = z.to_vector();
    for (int i = 0; i < n; ++i) {
      const float* row = zv.data() + (size_t)i * kClasses;
      correct += std::max_element(row, row + kClasses) - row == val.labels[s + i];
    }
  }
  net.set_training(true);
  return {loss / val.size(), correct / val.size()};
}

int run_curve(const std::string& arch, const std::string& init, const std::string& data, const fs::path& out,
              int batch, int steps, int every, int val_every, int val_n, float lr, uint64_t seed) {
  fs::create_directories(out);
  LoadOptions lo;
  lo.splits = {Split::training};
  Dataset train = load_dataset(data, lo);
  lo.splits = {Split::public_test};
  Dataset val_all = load_dataset(data, lo);
  std::vector<uint32_t> vo = epoch_order(val_all.size(), true, seed, 0xfeed);
  std::vector<size_t> pick(vo.begin(), vo.begin() + std::min<size_t>(val_n, vo.size()));
  std::sort(pick.begin(), pick.end());
  Dataset val = val_all.subset(pick);
  write_bytes(out / "train.u8", train.images.data(), train.images.size());
  write_bytes(out / "train-labels.u8", train.labels.data(), train.labels.size());
  write_bytes(out / "val.u8", val.images.data(), val.images.size());
  write_bytes(out / "val-labels.u8", val.labels.data(), val.labels.size());

  auto net = make_network(arch, kClasses, seed, init);
  save_safetensors((out / ("init-" + init + ".safetensors")).string(), net->state_dict(), {{"arch", arch}, {"init", init}});
  const AdamOptions ap;  // beta1 0.9, beta2 0.999, eps 1e-7: Keras' Adam defaults, as the seed used them
  Adam opt(net->parameters(), ap);
  LoaderOptions lopt;  // as apps/train/trainer.cpp sets it for this recipe
  lopt.batch_size = batch;
  lopt.shuffle = true;
  lopt.seed = seed;
  lopt.threads = 0;
  lopt.drop_last = true;
  lopt.num_classes = kClasses;
  BatchLoader loader(train, lopt);
  std::vector<int32_t> order;
  std::FILE* csv = std::fopen((out / ("emotune-" + init + ".csv")).string().c_str(), "w");
  if (!csv) throw Error("cannot write the curve CSV in " + out.string());
  std::fprintf(csv, "step,train_ce,train_total,train_acc,val_loss,val_acc\n");
  net->set_training(true);
  double ce_sum = 0, tot_sum = 0, correct = 0, seen = 0;
  int64_t step = 0;
  for (int64_t epoch = 0; step < steps; ++epoch) {
    loader.start_epoch(epoch);
    while (step < steps) {
      const Batch* b = loader.next();
      if (!b) break;
      Tensor x = Tensor::from_host({b->size, 1, b->side, b->side}, b->images, Device::cpu);
      std::vector<float> t(b->targets, b->targets + (size_t)b->size * kClasses);
      std::vector<int32_t> labels(b->labels, b->labels + b->size);
      order.insert(order.end(), b->samples, b->samples + b->size);
      loader.release(b);
      net->set_step((uint64_t)step);
      Tensor logits = net->forward(x);
      StepLoss l = loss_of(*net, logits, t);
      opt.zero_grad();
      l.total.backward();
      opt.step(lr);
      std::vector<float> z = logits.to_vector();
      for (size_t i = 0; i < labels.size(); ++i) {
        const float* row = z.data() + i * kClasses;
        correct += std::max_element(row, row + kClasses) - row == labels[i];
      }
      ce_sum += l.ce.item() * labels.size();
      tot_sum += l.total.item() * labels.size();
      seen += labels.size();
      ++step;
      if (step % every == 0) {
        std::string v = ",";
        if (step % val_every == 0 || step == steps) {
          auto [vl, va] = evaluate(*net, val);
          v = std::to_string(vl) + "," + std::to_string(va);
        }
        std::fprintf(csv, "%lld,%.6f,%.6f,%.6f,%s\n", (long long)step, ce_sum / seen, tot_sum / seen,
                     correct / seen, v.c_str());
        std::fflush(csv);
        std::fprintf(stderr, "%s %s step %lld: ce %.4f acc %.3f %s\n", arch.c_str(), init.c_str(),
                     (long long)step, ce_sum / seen, correct / seen, v.c_str());
        ce_sum = tot_sum = correct = seen = 0;
      }
    }
  }
  std::fclose(csv);
  write_bytes(out / ("order-" + init + ".i32"), order.data(), order.size() * sizeof(int32_t));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("oracle_dump", argv, /*select_cpu_path=*/false);
  CLI::App app("Dumps what emotune computes for the Keras oracle (tests/oracle/run.sh)");
  app.require_subcommand(1);
  std::string arch = "paper", init = "keras", data, out;
  int batch = 16, steps = 10, every = 50, val_every = 250, val_n = 1000;
  float lr = 1e-4f;
  uint64_t seed = 1;
  std::string precision = "fp32";
  auto* step = app.add_subcommand("step", "one initialisation, its steps, gradients and masks");
  auto* curve = app.add_subcommand("curve", "the seed's recipe for N steps, logged for the learning curves");
  auto* bf16_path = app.add_subcommand("bf16-path", "prints the bf16 kernel this CPU runs: amx, avx512-bf16 or none");
  for (auto* sc : {step, curve}) {
    sc->add_option("--arch", arch)->check(CLI::IsMember(network_names()));
    sc->add_option("--init", init)->check(CLI::IsMember({"keras", "torch"}));
    sc->add_option("--data", data, "FER-2013 (csv / packed / folders); step: empty for synthetic faces");
    sc->add_option("--out", out)->required();
    sc->add_option("--batch", batch)->check(CLI::Range(2, 1024));
    sc->add_option("--steps", steps)->check(CLI::Range(1, 100000));
    sc->add_option("--seed", seed);
  }
  step->add_option("--precision", precision, "the products' arithmetic (kernels/runtime.h); bf16 also writes "
                   "the gradient at every child's output")
      ->check(CLI::IsMember({"fp32", "bf16"}));
  curve->add_option("--every", every)->check(CLI::Range(1, 100000));
  curve->add_option("--val-every", val_every)->check(CLI::Range(1, 100000));
  curve->add_option("--val-n", val_n)->check(CLI::Range(1, 100000));
  curve->add_option("--lr", lr);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*bf16_path) {  // tests/oracle/run.sh: whether to run the bf16 check, as the engine decides it
      std::printf("%s\n", runtime_bf16_path().c_str());
      return 0;
    }
    if (*step) {
      runtime_set_precision(precision);  // throws, naming the CPU, where bf16 cannot run
      return run_step(arch, init, data, out, batch, steps, seed, precision);
    }
    if (data.empty()) throw Error("curve needs --data");
    return run_curve(arch, init, data, out, batch, steps, every, val_every, val_n, lr, seed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "oracle_dump: %s\n", e.what());
    return 1;
  }
}
