// Layers and networks on top of the engine: the paper network's parameter count and every
// intermediate shape, its L2 penalty, the vgg network's size budget, seeded Keras initialisation,
// train/eval behaviour of Dropout and BatchNorm2d, strict state-dict loading, and the model file
// round trip (save -> load_model -> predict_probabilities).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "base/preprocess.h"
#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/ops.h"
#include "layers/init.h"
#include "layers/layers.h"
#include "layers/inference.h"
#include "layers/model.h"
#include "layers/module.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;
using emotune::testing::contains;
using emotune::testing::error_of;

namespace {

const std::vector<std::string> kClasses = {"angry", "disgust", "fear", "happy", "neutral", "sad", "surprise"};

std::string classes_json() { return nlohmann::json(kClasses).dump(); }

Tensor random_images(int n, uint64_t seed, int size = 48) {
  return Tensor::from_vector({n, 1, size, size}, random_vector((size_t)n * size * size, seed, 0.0f, 1.0f));
}

Tensor param(Module& m, const std::string& name) {
  for (auto& nt : m.state_dict())
    if (nt.name == name) return nt.tensor;
  FAIL("no tensor named " << name);
  return Tensor();
}

}  // namespace

// ------------------------------------------------------------------ the paper network

TEST_CASE("paper net: 4,433,607 numbers as Keras counts them") {
  auto net = make_paper_net(7, 1);
  CHECK(net->count_parameters(true) == 4433607);
  // BN running mean and variance: 2 * (64 + 128 + 256 + 512) = 1920 non-trainable numbers.
  CHECK(net->count_parameters(false) == 4433607 - 1920);
  CHECK(net->buffers().size() == 8);
  // Checkpoint keys are stable names of the children.
  std::vector<std::string> names;
  for (auto& nt : net->state_dict()) names.push_back(nt.name);
  CHECK(names.front() == "conv1.weight");
  CHECK(std::find(names.begin(), names.end(), "bn4.running_var") != names.end());
  CHECK(std::find(names.begin(), names.end(), "dense2.bias") != names.end());
  // Weight decay (ParamRef::decay) applies to conv and dense kernels only, as Keras' and
  // PyTorch's usual recipes do; never to biases or batch-norm parameters.
  auto params = net->parameters();
  CHECK(params.size() == 7 * 2 + 4 * 2 + 2 * 2);
  for (auto& p : params) {
    INFO(p.name);
    CHECK(p.decay == p.name.ends_with(".weight"));
    CHECK(p.tensor.requires_grad());
  }
  for (auto& b : net->buffers()) CHECK_FALSE(b.tensor.requires_grad());
}

TEST_CASE("paper net: every intermediate shape on a [2, 1, 48, 48] input") {
  auto net = make_paper_net(7, 1);
  NoGradGuard no_grad;
  for (bool training : {true, false}) {
    INFO("training " << training);
    net->set_training(training);
    auto shapes = net->trace_shapes(random_images(2, 5));
    const std::vector<std::pair<std::string, Shape>> want = {
        {"conv1", {2, 64, 48, 48}},  {"relu1", {2, 64, 48, 48}},  {"conv2", {2, 64, 46, 46}},
        {"relu2", {2, 64, 46, 46}},  {"bn1", {2, 64, 46, 46}},    {"pool1", {2, 64, 23, 23}},
        {"drop1", {2, 64, 23, 23}},  {"conv3", {2, 128, 23, 23}}, {"relu3", {2, 128, 23, 23}},
        {"conv4", {2, 128, 23, 23}}, {"relu4", {2, 128, 23, 23}}, {"bn2", {2, 128, 23, 23}},
        {"pool2", {2, 128, 11, 11}}, {"drop2", {2, 128, 11, 11}}, {"conv5", {2, 256, 11, 11}},
        {"relu5", {2, 256, 11, 11}}, {"conv6", {2, 256, 11, 11}}, {"relu6", {2, 256, 11, 11}},
        {"bn3", {2, 256, 11, 11}},   {"pool3", {2, 256, 5, 5}},   {"drop3", {2, 256, 5, 5}},
        {"conv7", {2, 512, 5, 5}},   {"relu7", {2, 512, 5, 5}},   {"bn4", {2, 512, 5, 5}},
        {"pool4", {2, 512, 2, 2}},   {"drop4", {2, 512, 2, 2}},   {"flatten", {2, 2048}},
        {"dense1", {2, 1024}},       {"relu8", {2, 1024}},        {"drop5", {2, 1024}},
        {"dense2", {2, 7}},
    };
    REQUIRE(shapes.size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) {
      INFO("layer " << i);
      CHECK(shapes[i].first == want[i].first);
      CHECK(shape_str(shapes[i].second) == shape_str(want[i].second));
    }
  }
  // The same network for another class count only changes the last layer.
  auto net8 = make_paper_net(8, 1);
  CHECK(net8->count_parameters(true) == 4433607 + 1024 + 1);
}

TEST_CASE("paper net: the L2 penalty is on dense1's kernel only and equals 0.001 sum(w^2)") {
  auto net = make_paper_net(7, 2);
  std::vector<Tensor> terms;
  net->collect_penalties(terms);
  REQUIRE(terms.size() == 1);
  Tensor w = param(*net, "dense1.weight");
  CHECK(w.shape() == Shape{1024, 2048});
  double s = 0;
  for (float v : w.to_vector()) s += (double)v * v;
  Tensor pen = net->penalty();
  REQUIRE(pen.defined());
  // The kernel sums in double; two float roundings (the sum, the product with 0.001) remain.
  CHECK(pen.item() == doctest::Approx(0.001 * s).epsilon(1e-6));
  CHECK(net->describe().find("dense1: Linear(2048->1024, L2 0.001)") != std::string::npos);

  // Its gradient reaches dense1.weight (2 * 0.001 * w) and nothing else.
  pen.backward();
  for (auto& p : net->parameters()) {
    INFO(p.name);
    if (p.name == "dense1.weight") {
      std::vector<float> g = p.tensor.grad().to_vector(), wv = w.to_vector();
      for (size_t i = 0; i < g.size(); i += 997) CHECK(g[i] == 0.002f * wv[i]);  // the same float product
    } else {
      CHECK_FALSE(p.tensor.grad().defined());
    }
  }
}

// ------------------------------------------------------------------ the vgg network

TEST_CASE("vgg net: output [2, 7] and at most 10 MB of fp16 weights") {
  auto net = make_vgg_net(7, 1);
  {
    NoGradGuard no_grad;
    net->set_training(false);
    Tensor y = net->forward(random_images(2, 6));
    CHECK(y.shape() == Shape{2, 7});
    for (float v : y.to_vector()) CHECK(std::isfinite(v));
  }
  std::string dir = emotune::testing::temp_dir("layers_vgg");
  std::string path = dir + "/vgg16.safetensors";
  save_safetensors(path, net->state_dict(), {{"arch", "vgg"}}, DType::f16);
  const auto bytes = std::filesystem::file_size(path);
  MESSAGE("vgg: " << net->count_parameters(true) << " numbers, fp16 file " << bytes << " bytes");
  CHECK(bytes <= 10u * 1000 * 1000);  // 10 MB in decimal units: the stricter reading
  CHECK(make_network("vgg", 7, 1)->count_parameters(true) == net->count_parameters(true));
  std::string msg = error_of([] { (void)make_network("resnet", 7, 1); });
  CHECK(contains(msg, "'resnet'"));
  CHECK(contains(msg, "resnet18"));
  CHECK(contains(msg, "paper"));
  CHECK(contains(msg, "vgg"));
}

// ------------------------------------------------------------------ resnet18, Residual, GlobalAvgPool2d

TEST_CASE("resnet18 net: stage shapes, parameter count from its definition, unique checkpoint names") {
  auto net = make_network("resnet18", 7, 1);
  NoGradGuard no_grad;
  net->set_training(false);
  std::map<std::string, Shape> at;
  for (const auto& [name, shape] : net->trace_shapes(random_images(2, 7))) at[name] = shape;
  CHECK(at["relu1"] == Shape{2, 64, 48, 48});
  CHECK(at["res1_2"] == Shape{2, 64, 48, 48});
  CHECK(at["res2_1"] == Shape{2, 128, 24, 24});
  CHECK(at["res3_2"] == Shape{2, 256, 12, 12});
  CHECK(at["res4_2"] == Shape{2, 512, 6, 6});
  CHECK(at["pool"] == Shape{2, 512});
  CHECK(at["fc"] == Shape{2, 7});
  // Trainable numbers, counted from the layer list of nets/resnet.cpp: convs without bias, BN
  // gamma + beta, a 1x1 projection where a stage starts with stride 2, fc with bias.
  auto block = [](int64_t in, int64_t out, bool down) {
    return in * out * 9 + 2 * out + out * out * 9 + 2 * out + (down ? in * out + 2 * out : 0);
  };
  int64_t want = 1 * 64 * 9 + 2 * 64;
  const int64_t widths[4] = {64, 128, 256, 512};
  int64_t in = 64;
  for (int s = 0; s < 4; ++s) {
    want += block(in, widths[s], s > 0) + block(widths[s], widths[s], false);
    in = widths[s];
  }
  want += 512 * 7 + 7;
  CHECK(net->count_parameters(false) == want);
  MESSAGE("resnet18: " << want << " trainable parameters");
  std::set<std::string> names;
  for (const auto& t : net->state_dict()) CHECK_MESSAGE(names.insert(t.name).second, t.name);
  CHECK(names.count("res2_1.down_conv.weight"));
  CHECK(names.count("res4_2.bn2.running_var"));
  CHECK(!names.count("res1_1.down_conv.weight"));  // identity shortcut: no weights
  CHECK(explained_layer("resnet18") == "res4_2");
}

namespace {
// relu(conv3x3(x) + b1 + conv1x1(x) + b2) with biases large enough that every pre-activation is
// positive, so the block is linear in x around the test point (no ReLU kink).
std::shared_ptr<Residual> linear_block(Rng& rng, float bias) {
  auto body = std::make_shared<Sequential>();
  auto c1 = std::make_shared<Conv2d>(3, 4, 3, "same", rng, true);
  body->add("conv1", c1);
  auto shortcut = std::make_shared<Sequential>();
  auto c2 = std::make_shared<Conv2d>(3, 4, 1, "valid", rng, true);
  shortcut->add("down_conv", c2);
  for (auto* c : {c1.get(), c2.get()}) {
    float* b = c->bias.data();
    for (int k = 0; k < 4; ++k) b[k] = bias;
  }
  return std::make_shared<Residual>(body, shortcut);
}

// Central differences of <f(x), r> against the autograd gradient of x.
void check_input_gradient(Module& m, const Shape& shape, uint64_t seed) {
  std::vector<float> xv = random_vector((size_t)shape_numel(shape), seed);
  Tensor x = Tensor::from_vector(shape, xv);
  x.set_requires_grad(true);
  Tensor y = m.forward(x);
  std::vector<float> r = random_vector((size_t)y.numel(), seed + 1);
  run_backward(y, Tensor::from_vector(y.shape(), r));
  std::vector<float> analytic = x.grad().to_vector(), numeric(xv.size());
  NoGradGuard no_grad;
  auto loss = [&](const std::vector<float>& v) {
    std::vector<float> out = m.forward(Tensor::from_vector(shape, v)).to_vector();
    double s = 0;
    for (size_t i = 0; i < out.size(); ++i) s += (double)out[i] * r[i];
    return s;
  };
  const float h = 0.5f;  // the function is linear here: central differences are exact up to rounding
  for (size_t i = 0; i < xv.size(); ++i) {
    std::vector<float> p = xv, q = xv;
    p[i] += h;
    q[i] -= h;
    numeric[i] = (float)((loss(p) - loss(q)) / (2 * h));
  }
  // Sums of at most 27 + 3 float products per output and of the outputs in double: rounding of
  // order 1e-6 at these magnitudes; 1e-4 (as the engine's linear gradient checks) leaves a margin.
  EMOTUNE_CHECK_CLOSE(testing::allclose(analytic, numeric, 1e-4, 1e-4));
}
}  // namespace

TEST_CASE("Residual: relu(body(x) + shortcut(x)); the gradient flows through both branches") {
  Rng rng(3);
  auto block = linear_block(rng, 20.0f);  // glorot: |conv3x3| <= 27 * 0.31, |conv1x1| <= 3 * 0.93; < 40
  check_input_gradient(*block, {2, 3, 5, 4}, 11);
  // Biases far below zero: every output is 0 after the ReLU, and so is the gradient.
  auto dead = linear_block(rng, -20.0f);
  Tensor x = Tensor::from_vector({1, 3, 4, 4}, random_vector(48, 12));
  x.set_requires_grad(true);
  Tensor y = dead->forward(x);
  for (float v : y.to_vector()) CHECK(v == 0.0f);
  run_backward(y, Tensor::full(y.shape(), 1.0f));
  for (float g : x.grad().to_vector()) CHECK(g == 0.0f);
  // Identity shortcut: relu(body(x) + x), by hand.
  auto body = std::make_shared<Sequential>();
  body->add("relu", std::make_shared<ReLU>());
  Residual identity(body, nullptr);
  NoGradGuard no_grad;
  std::vector<float> v = random_vector(2 * 3 * 2 * 2, 13);
  std::vector<float> got = identity.forward(Tensor::from_vector({2, 3, 2, 2}, v)).to_vector();
  for (size_t i = 0; i < v.size(); ++i) CHECK(got[i] == std::max(0.0f, std::max(0.0f, v[i]) + v[i]));
}

TEST_CASE("Residual: a shape mismatch and clashing child names are errors that name them") {
  Rng rng(4);
  auto body = std::make_shared<Sequential>();
  body->add("conv1", std::make_shared<Conv2d>(3, 4, 3, "same", rng, false));
  Residual no_projection(body, nullptr);
  CHECK(contains(error_of([&] { (void)no_projection.forward(Tensor::zeros({1, 3, 4, 4})); }), "[1, 4, 4, 4]"));
  auto clash = std::make_shared<Sequential>();
  clash->add("conv1", std::make_shared<Conv2d>(3, 4, 1, "valid", rng, false));
  CHECK(contains(error_of([&] { Residual r(body, clash); }), "'conv1'"));
  CHECK(contains(error_of([] { (void)ops::conv2d_padding("half", 4, 2); }), "odd kernel"));
  CHECK(ops::conv2d_padding("half", 3, 2) == 1);
}

TEST_CASE("GlobalAvgPool2d: the mean of each plane; its gradient spreads 1 / (H W)") {
  GlobalAvgPool2d pool;
  std::vector<float> v = random_vector(2 * 3 * 5 * 4, 21);
  {
    NoGradGuard no_grad;
    std::vector<float> got = pool.forward(Tensor::from_vector({2, 3, 5, 4}, v)).to_vector();
    REQUIRE(got.size() == 6);
    for (int p = 0; p < 6; ++p) {
      double mean = 0;
      for (int i = 0; i < 20; ++i) mean += v[(size_t)p * 20 + i];
      mean /= 20;
      // 20 products and sums in float against double: a few ulps of the plane's |values| (<= 1)
      CHECK(std::fabs(got[(size_t)p] - mean) <= 20 * testing::kFloatEps);
    }
  }
  check_input_gradient(pool, {2, 3, 5, 4}, 22);
  CHECK(contains(error_of([&] { (void)pool.forward(Tensor::zeros({2, 3})); }), "[2, 3]"));
}

// ------------------------------------------------------------------ initialisation

TEST_CASE("init: the same seed gives bit-identical weights, another seed other weights") {
  for (const char* arch : {"paper", "vgg"}) {
    INFO(arch);
    auto a = make_network(arch, 7, 123), b = make_network(arch, 7, 123), c = make_network(arch, 7, 124);
    auto sa = a->state_dict(), sb = b->state_dict(), sc = c->state_dict();
    REQUIRE(sa.size() == sb.size());
    REQUIRE(sa.size() == sc.size());
    size_t differing = 0, kernels = 0;
    for (size_t i = 0; i < sa.size(); ++i) {
      INFO(sa[i].name);
      CHECK(sa[i].name == sb[i].name);
      CHECK(sa[i].tensor.to_vector() == sb[i].tensor.to_vector());
      if (sa[i].name.size() > 7 && sa[i].name.ends_with(".weight") && sa[i].tensor.ndim() >= 2) {
        ++kernels;
        if (sa[i].tensor.to_vector() != sc[i].tensor.to_vector()) ++differing;
      }
    }
    CHECK(kernels > 0);
    CHECK(differing == kernels);  // every kernel changes with the seed
  }
}

TEST_CASE("init: SkipInitGuard stops the draws while it lives, nested, and load_model gives the saved weights") {
  Tensor w = Tensor::from_vector({4}, {1, 2, 3, 4});
  Rng rng(9);
  {
    SkipInitGuard outer;
    {
      SkipInitGuard inner;
    }
    init_uniform(w, 1.0f, rng);  // still skipped: the inner guard restored the outer's state
    CHECK(w.to_vector() == std::vector<float>{1, 2, 3, 4});
    CHECK(rng.counter() == 0);
  }
  init_uniform(w, 1.0f, rng);  // drawn again once every guard is gone
  CHECK(w.to_vector() != std::vector<float>{1, 2, 3, 4});
  CHECK(rng.counter() == 4);

  // load_model builds its network under the guard: every weight must still be the file's.
  auto net = make_network("paper", 7, 42);
  const std::string path = testing::temp_dir("skip_init") + "/paper.safetensors";
  save_safetensors(path, net->state_dict(),
                   {{"arch", "paper"}, {"classes", R"(["a","b","c","d","e","f","g"])"},
                    {"preprocess", Preprocess{}.to_json()}});
  LoadedModel m = load_model(path, Device::cpu);
  auto want = net->state_dict(), got = m.net->state_dict();
  REQUIRE(want.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    INFO(want[i].name);
    CHECK(testing::bit_equal(got[i].tensor.to_vector(), want[i].tensor.to_vector()));
  }
}

TEST_CASE("init: Keras glorot_uniform limits, zero biases, BN gamma 1 beta 0 (paper net)") {
  auto net = make_paper_net(7, 7);
  int kernels = 0;
  for (auto& nt : net->state_dict()) {
    INFO(nt.name);
    std::vector<float> v = nt.tensor.to_vector();
    const Shape& s = nt.tensor.shape();
    if (nt.name.ends_with(".weight")) {
      ++kernels;
      int64_t fan_in, fan_out;
      if (s.size() == 4) fan_in = s[1] * s[2] * s[3], fan_out = s[0] * s[2] * s[3];
      else fan_in = s[1], fan_out = s[0];
      const double limit = std::sqrt(6.0 / (double)(fan_in + fan_out));
      double mx = 0, sum = 0, sq = 0;
      for (float x : v) {
        mx = std::max(mx, (double)std::fabs(x));
        sum += x;
        sq += (double)x * x;
      }
      CHECK(mx <= limit);
      // The limit is reached, not a smaller one: P(max < 0.95 limit) = 0.95^n, n >= 576 here.
      CHECK(mx > 0.95 * limit);
      if (v.size() >= 10000) {
        // Uniform(-l, l): mean 0, variance l^2/3. Sample statistics of n >= 10^4 values are within
        // 5% (variance: relative sd sqrt(0.8/n) <= 0.9%; mean: sd l/sqrt(3n) <= 0.006 l).
        double n = (double)v.size();
        CHECK(std::fabs(sum / n) < 0.03 * limit);
        CHECK(sq / n == doctest::Approx(limit * limit / 3).epsilon(0.05));
      }
    } else if (nt.name.ends_with(".bias") || nt.name.ends_with(".beta") || nt.name.ends_with(".running_mean")) {
      CHECK(v == std::vector<float>(v.size(), 0.0f));
    } else if (nt.name.ends_with(".gamma") || nt.name.ends_with(".running_var")) {
      CHECK(v == std::vector<float>(v.size(), 1.0f));
    } else {
      FAIL("unexpected tensor " << nt.name);
    }
  }
  CHECK(kernels == 9);  // 7 convs + 2 dense
}

TEST_CASE("init: vgg uses he_uniform on its convs and first dense layer") {
  auto net = make_vgg_net(7, 7);
  for (auto& nt : net->state_dict()) {
    if (!nt.name.ends_with(".weight") || nt.name == "dense2.weight") continue;
    INFO(nt.name);
    const Shape& s = nt.tensor.shape();
    int64_t fan_in = s.size() == 4 ? s[1] * s[2] * s[3] : s[1];
    const double limit = std::sqrt(6.0 / (double)fan_in);
    double mx = 0;
    for (float x : nt.tensor.to_vector()) mx = std::max(mx, (double)std::fabs(x));
    CHECK(mx <= limit);
    CHECK(mx > 0.95 * limit);  // >= 576 values: see the glorot test
  }
  CHECK(contains(error_of([] {
    Rng rng(1);
    Linear l(2, 2, rng, 0.0f, "lecun_normal");
  }), "lecun_normal"));
}

TEST_CASE("init: 'torch' redraws convs and dense layers with PyTorch's defaults, kernels and biases") {
  auto keras = make_network("paper", 7, 7, "keras");
  auto torch = make_network("paper", 7, 7, "torch");
  auto kd = keras->state_dict(), td = torch->state_dict();
  REQUIRE(kd.size() == td.size());
  int redrawn = 0;
  for (size_t i = 0; i < td.size(); ++i) {
    const std::string& name = td[i].name;
    INFO(name);
    std::vector<float> v = td[i].tensor.to_vector();
    const bool layer = name.rfind("conv", 0) == 0 || name.rfind("dense", 0) == 0;
    if (!layer) {  // batch norm: untouched
      CHECK(v == kd[i].tensor.to_vector());
      continue;
    }
    const Shape& ws = torch->state_dict()[name.ends_with(".bias") ? i - 1 : i].tensor.shape();
    const int64_t fan_in = ws.size() == 4 ? ws[1] * ws[2] * ws[3] : ws[1];
    // kaiming_uniform(a = sqrt(5)); computed in float, as the initialiser does, since a draw may
    // land on the float bound itself, a hair above the double 1/sqrt(fan_in).
    const double limit = 1.0f / std::sqrt((float)fan_in);
    double mx = 0;
    for (float x : v) mx = std::max(mx, (double)std::fabs(x));
    CHECK(mx <= limit);
    // The bound is reached, not a smaller one: P(max < f limit) = f^n. Kernels have n >= 576
    // (0.95^576 ~ 1e-13); biases n >= 64 (0.9^64 ~ 1e-3) except dense2's 7, not checked.
    if (v.size() >= 576) CHECK(mx > 0.95 * limit);
    else if (v.size() >= 64) CHECK(mx > 0.9 * limit);
    ++redrawn;
  }
  CHECK(redrawn == 18);  // 9 layers x (kernel, bias)
  CHECK(contains(error_of([] { make_network("paper", 7, 1, "xavier"); }), "unknown initialisation 'xavier'"));
}

// ------------------------------------------------------------------ train / eval

TEST_CASE("Dropout: identity in eval, a seeded mask in training that depends on (seed, step)") {
  Dropout d(0.5f);
  Tensor x = Tensor::from_vector({4, 64}, random_vector(256, 8, 0.5f, 1.5f));  // no zeros in x
  NoGradGuard no_grad;
  d.set_training(false);
  CHECK(d.forward(x).to_vector() == x.to_vector());
  d.set_training(true);
  d.set_seed(11);
  d.set_step(3);
  std::vector<float> a = d.forward(x).to_vector();
  CHECK(a == d.forward(x).to_vector());  // same (seed, step): same mask
  int zeros = 0;
  for (float v : a) zeros += v == 0.0f;
  CHECK(zeros > 80);   // ~128 of 256; the binomial tail outside [80, 176] is < 1e-8
  CHECK(zeros < 176);
  d.set_step(4);
  CHECK(d.forward(x).to_vector() != a);  // next step: another mask
  d.set_step(3);
  d.set_seed(12);
  CHECK(d.forward(x).to_vector() != a);  // another seed: another mask
  CHECK(contains(error_of([] { Dropout bad(1.0f); }), "rate"));
}

TEST_CASE("BatchNorm2d: batch statistics in training, running statistics in eval") {
  BatchNorm2d bn(3, 0.1f, 1e-3f);
  std::vector<float> rm = {0.5f, -1.0f, 2.0f}, rv = {4.0f, 0.25f, 1.0f};
  bn.running_mean.copy_from(Tensor::from_vector({3}, rm));
  bn.running_var.copy_from(Tensor::from_vector({3}, rv));
  bn.gamma.copy_from(Tensor::from_vector({3}, {2.0f, 1.0f, 0.5f}));
  bn.beta.copy_from(Tensor::from_vector({3}, {0.0f, 1.0f, -1.0f}));
  Tensor x = Tensor::from_vector({2, 3, 2, 2}, random_vector(24, 9, -3.0f, 3.0f));
  std::vector<float> xv = x.to_vector();
  NoGradGuard no_grad;

  bn.set_training(false);
  std::vector<float> y = bn.forward(x).to_vector();
  const float g[3] = {2.0f, 1.0f, 0.5f}, b[3] = {0.0f, 1.0f, -1.0f};
  for (int i = 0; i < 24; ++i) {
    int c = (i / 4) % 3;
    double want = (xv[i] - rm[c]) / std::sqrt((double)rv[c] + 1e-3) * g[c] + b[c];
    CHECK(y[i] == doctest::Approx(want).epsilon(1e-5));  // float normalisation, a few ulp
  }
  CHECK(bn.running_mean.to_vector() == rm);  // eval updates nothing
  CHECK(bn.running_var.to_vector() == rv);
  CHECK(bn.forward(x).to_vector() == y);     // and is deterministic

  bn.set_training(true);
  std::vector<float> yt = bn.forward(x).to_vector();
  // Training output is normalised with the batch: per channel, mean beta and std ~gamma.
  for (int c = 0; c < 3; ++c) {
    double s = 0, sq = 0;
    for (int n = 0; n < 2; ++n)
      for (int k = 0; k < 4; ++k) {
        double v = yt[(n * 3 + c) * 4 + k];
        s += v;
        sq += v * v;
      }
    double mean = s / 8, var = sq / 8 - mean * mean;
    CHECK(mean == doctest::Approx(b[c]).epsilon(1e-5).scale(1.0));
    // eps 1e-3 shrinks the variance slightly: var_y = g^2 var / (var + eps)
    CHECK(var == doctest::Approx(g[c] * g[c]).epsilon(2e-3));
  }
  CHECK(bn.running_mean.to_vector() != rm);  // training moved them
  // A whole network: set_training reaches every child.
  auto net = make_paper_net(7, 1);
  net->set_training(false);
  for (auto& c : net->children()) CHECK_FALSE(c.module->training());
  net->set_training(true);
  for (auto& c : net->children()) CHECK(c.module->training());
}

TEST_CASE("paper net: eval forward is deterministic; training forward depends on the dropout step") {
  auto net = make_paper_net(7, 3);
  Tensor x = random_images(2, 10);
  NoGradGuard no_grad;
  net->set_training(false);
  std::vector<float> e1 = net->forward(x).to_vector(), e2 = net->forward(x).to_vector();
  CHECK(e1 == e2);
  net->set_training(true);
  net->set_step(1);
  std::vector<float> t1 = net->forward(x).to_vector();
  net->set_step(2);
  std::vector<float> t2 = net->forward(x).to_vector();
  CHECK(t1 != t2);
  CHECK(t1 != e1);
}

// ------------------------------------------------------------------ state dicts

TEST_CASE("load_state_dict is strict: a missing tensor or a wrong shape names the tensor") {
  auto src = make_paper_net(7, 1), dst = make_paper_net(7, 2);
  Checkpoint ck;
  ck.path = "model.safetensors";
  for (auto& nt : src->state_dict()) ck.tensors.push_back({nt.name, nt.tensor.clone()});
  dst->load_state_dict(ck);
  auto a = src->state_dict(), b = dst->state_dict();
  for (size_t i = 0; i < a.size(); ++i) CHECK(a[i].tensor.to_vector() == b[i].tensor.to_vector());
  // the destination got copies, not the source's storage
  CHECK(param(*dst, "conv1.weight").data() != param(*src, "conv1.weight").data());

  Checkpoint missing = ck;
  missing.tensors.erase(missing.tensors.begin() + 5);
  std::string gone = ck.tensors[5].name;
  std::string msg = error_of([&] { dst->load_state_dict(missing); });
  CHECK(contains(msg, "model.safetensors"));
  CHECK(contains(msg, "'" + gone + "'"));
  CHECK(contains(msg, "missing"));

  Checkpoint wrong = ck;
  for (auto& nt : wrong.tensors)
    if (nt.name == "dense2.weight") nt.tensor = Tensor::zeros({8, 1024});
  msg = error_of([&] { dst->load_state_dict(wrong); });
  CHECK(contains(msg, "'dense2.weight'"));
  CHECK(contains(msg, "[8, 1024]"));
  CHECK(contains(msg, "[7, 1024]"));
}

// ------------------------------------------------------------------ model files

TEST_CASE("model: save -> load_model -> predict_probabilities matches the in-memory net bit for bit") {
  std::string dir = emotune::testing::temp_dir("layers_model");
  std::string path = dir + "/paper.safetensors";
  auto net = make_paper_net(7, 21);
  // Give the BN running statistics and the weights something other than their initial values.
  {
    net->set_training(true);
    NoGradGuard no_grad;
    for (int i = 0; i < 2; ++i) (void)net->forward(random_images(4, 30 + i));
  }
  Preprocess pre;  // size 48, scale 1/255, mean 0, std 1
  std::map<std::string, std::string> meta = {
      {"arch", "paper"}, {"classes", classes_json()}, {"preprocess", pre.to_json()}};
  save_safetensors(path, net->state_dict(), meta);

  LoadedModel loaded = load_model(path);
  CHECK(loaded.info.arch == "paper");
  CHECK(loaded.info.classes == kClasses);
  CHECK(loaded.info.preprocess.size == 48);
  CHECK(loaded.info.preprocess.scale == pre.scale);
  CHECK(loaded.device == Device::cpu);
  CHECK_FALSE(loaded.net->training());

  // The in-memory net, wrapped the same way (compiled into the CPU inference graph as load_model
  // does), in eval mode.
  CHECK(loaded.graph != nullptr);
  LoadedModel memory{net, loaded.info, Device::cpu, InferenceGraph::compile(*net, 1, 48, 48)};
  const int n = 3;
  std::vector<float> inputs = random_vector((size_t)n * 48 * 48, 40, 0.0f, 1.0f);
  auto p_loaded = predict_probabilities(loaded, inputs.data(), n);
  auto p_memory = predict_probabilities(memory, inputs.data(), n);
  CHECK_FALSE(net->training());  // predict_probabilities switched it to eval
  REQUIRE(p_loaded.size() == (size_t)n);
  for (int i = 0; i < n; ++i) {
    INFO("row " << i);
    REQUIRE(p_loaded[i].size() == 7);
    CHECK(p_loaded[i] == p_memory[i]);  // bit-identical on the CPU
    double s = 0;
    for (float p : p_loaded[i]) {
      CHECK(p >= 0.0f);
      CHECK(p <= 1.0f);
      s += p;
    }
    CHECK(s == doctest::Approx(1.0).epsilon(1e-6));  // 7 float-rounded probabilities
  }
  // And against the raw logits of the in-memory net: the same softmax.
  {
    NoGradGuard no_grad;
    std::vector<float> z = net->forward(Tensor::from_vector({n, 1, 48, 48}, inputs)).to_vector();
    for (int i = 0; i < n; ++i) {
      double mx = *std::max_element(z.begin() + i * 7, z.begin() + i * 7 + 7), sum = 0;
      for (int k = 0; k < 7; ++k) sum += std::exp((double)z[i * 7 + k] - mx);
      for (int k = 0; k < 7; ++k)  // float exp vs double exp: ~1e-7 relative
        CHECK(p_loaded[i][k] == doctest::Approx(std::exp((double)z[i * 7 + k] - mx) / sum).epsilon(1e-5));
    }
  }
  // Inputs differ: probabilities differ (the net is not constant).
  CHECK(p_loaded[0] != p_loaded[1]);
}

TEST_CASE("model: load_model refuses a checkpoint of another network or with bad metadata") {
  std::string dir = emotune::testing::temp_dir("layers_model_bad");
  Preprocess pre;
  auto vgg = make_vgg_net(7, 1);
  std::string path = dir + "/vgg_as_paper.safetensors";
  save_safetensors(path, vgg->state_dict(),
                   {{"arch", "paper"}, {"classes", classes_json()}, {"preprocess", pre.to_json()}}, DType::f16);
  std::string msg = error_of([&] { (void)load_model(path); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "another network"));
  CHECK(contains(msg, "'paper'"));

  auto paper = make_paper_net(7, 1);
  auto write = [&](std::map<std::string, std::string> meta) {
    std::string p = dir + "/m.safetensors";
    save_safetensors(p, paper->state_dict(), meta);
    return error_of([&] { (void)load_model(p); });
  };
  std::map<std::string, std::string> good = {{"arch", "paper"}, {"classes", classes_json()}, {"preprocess", pre.to_json()}};
  CHECK(write(good).empty());
  auto m = good;
  m.erase("arch");
  CHECK(contains(write(m), "'arch'"));
  m = good;
  m["arch"] = "resnet";
  CHECK(contains(write(m), "'resnet'"));
  m = good;
  m["classes"] = "happy,sad";
  CHECK(contains(write(m), "'classes'"));
  m = good;
  m["classes"] = "[\"only\"]";
  CHECK(contains(write(m), "fewer than 2"));
  m = good;
  m["classes"] = "[\"a\",\"b\",\"c\"]";  // 3 classes: dense2 is [7, 1024] in the file
  msg = write(m);
  CHECK(contains(msg, "dense2"));
  m = good;
  m.erase("preprocess");
  CHECK(contains(write(m), "'preprocess'"));
  m = good;
  m["preprocess"] = "{\"size\": 48}";
  CHECK(contains(write(m), "preprocess"));
}
