// The CPU inference graph (layers/inference.h) against the training graph's eval-mode forward:
// both networks with random weights and random BatchNorm statistics (negative gammas included, so
// the paper net's BN-after-ReLU scale is negative somewhere before a pool), with each conv
// algorithm; the shipped models; what it fused; how load_model and predict_probabilities use it;
// a layer it cannot compile (the training graph runs it, after one warning).
// Every layer shape of both networks is checked kernel by kernel in test_conv2d_infer.cpp.
#include <doctest/doctest.h>
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <string>
#include <vector>

#include "engine/autograd.h"
#include "engine/checkpoint.h"
#include "engine/ops.h"
#include "engine/runtime.h"
#include "base/softmax.h"
#include "layers/inference.h"
#include "layers/layers.h"
#include "layers/model.h"
#include "kernels/cpu/conv2d_thin.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/runtime.h"
#include "layers/nets/nets.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::random_vector;

namespace {

// BN statistics far from the identity, so that folding them wrongly shows.
void randomize_batch_norms(Sequential& net, uint64_t seed) {
  for (const auto& c : net.children()) {
    auto* bn = dynamic_cast<BatchNorm2d*>(c.module.get());
    if (!bn) continue;
    const size_t n = (size_t)bn->gamma.numel();
    auto g = random_vector(n, seed++, 0.3f, 1.5f);
    for (size_t i = 0; i < n; i += 5) g[i] = -g[i];  // every 5th channel flipped
    bn->gamma.copy_from(Tensor::from_vector({(int64_t)n}, g));
    bn->beta.copy_from(Tensor::from_vector({(int64_t)n}, random_vector(n, seed++, -0.5f, 0.5f)));
    bn->running_mean.copy_from(Tensor::from_vector({(int64_t)n}, random_vector(n, seed++, -0.5f, 0.5f)));
    bn->running_var.copy_from(Tensor::from_vector({(int64_t)n}, random_vector(n, seed++, 0.3f, 2.0f)));
  }
}

std::vector<float> training_forward(Sequential& net, const std::vector<float>& x, int n) {
  NoGradGuard no_grad;
  net.set_training(false);
  return net.forward(Tensor::from_host({n, 1, 48, 48}, x.data())).to_vector();
}

// Tolerance: the graph computes the same function with float32 sums in another order (Winograd's
// transforms, the BatchNorm folded into the weights before the sum instead of applied after it).
// Those roundings have random signs, so a layer's output moves by about eps (1.2e-7) of its own
// scale, and the 8-10 layers (each renormalised by its BatchNorm) compound that to a few 1e-7 of
// the logits' scale: measured worst 8e-7 of max |logit| (printed by the test). The bound, 2e-5 of
// max |logit|, is 25x that; the kernel-level bound (test_conv2d_infer.cpp) is the rigorous one.
// A BN folded with a wrong sign, a dropped shift, a pool before instead of after a negative
// affine, or a wrong tile offset moves logits by O(1e-2) relative or more (checked by mutation).
void check_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double scale = 0, worst = 0;
  for (float v : want) scale = std::max(scale, (double)std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs((double)got[i] - want[i]));
  MESSAGE(what << ": worst |graph - training| = " << worst << " (" << worst / scale << " of max |logit| " << scale
               << ")");
  CHECK(scale > 0.1);  // the logits are not degenerate
  CHECK(worst <= 2e-5 * scale);
}

}  // namespace

TEST_CASE("inference graph: equals the training graph's eval forward, both networks, every algorithm") {
  for (const std::string arch : {"paper", "vgg"}) {
    auto net = make_network(arch, 7, 11);
    randomize_batch_norms(*net, 100);
    for (int n : {1, 3}) {
      auto x = random_vector((size_t)n * 48 * 48, 7 + n, 0.0f, 1.0f);
      const auto want = training_forward(*net, x, n);
      for (const std::string algo : {"auto", "im2col", "winograd", "winograd4"}) {
        InferenceOptions o;
        o.conv_algo = algo;
        auto g = InferenceGraph::compile(*net, 1, 48, 48, o);
        CHECK(g->outputs() == 7);
        check_close(g->forward(x.data(), n), want, arch + " batch " + std::to_string(n) + " " + algo);
      }
    }
  }
}

TEST_CASE("inference graph: the shipped models give the training graph's logits") {
  for (const std::string name : {"paper", "vgg"}) {
    const std::string path = "models/" + name + ".safetensors";
    if (!std::filesystem::exists(path)) continue;
    const RuntimeSettings saved = runtime_settings();
    RuntimeSettings training = saved;
    training.graph = "training";
    runtime_configure(training);
    LoadedModel m = load_model(path);
    runtime_configure(saved);
    CHECK(m.graph == nullptr);
    auto x = random_vector((size_t)5 * 48 * 48, 3, 0.0f, 1.0f);
    const auto want = training_forward(dynamic_cast<Sequential&>(*m.net), x, 5);
    LoadedModel fast = load_model(path);
    REQUIRE(fast.graph != nullptr);
    check_close(fast.graph->forward(x.data(), 5), want, path);
    // predict_probabilities goes through the graph: the same softmax of the same logits.
    auto p_fast = predict_probabilities(fast, x.data(), 5), p_slow = predict_probabilities(m, x.data(), 5);
    for (size_t i = 0; i < p_fast.size(); ++i)
      for (size_t k = 0; k < p_fast[i].size(); ++k) CHECK(std::fabs(p_fast[i][k] - p_slow[i][k]) < 1e-4);
  }
}

TEST_CASE("inference graph: what each step fuses") {
  auto paper = InferenceGraph::compile(*make_network("paper", 7, 1), 1, 48, 48);
  const std::string d = paper->describe();
  INFO(d);
  CHECK(d.find("conv2+relu2+bn1(epilogue)+pool1") != std::string::npos);  // BN after ReLU: epilogue
  CHECK(d.find("conv7+relu7+bn4(epilogue)+pool4") != std::string::npos);
  CHECK(d.find("dense1+relu8") != std::string::npos);
  CHECK(d.find("conv1+relu1  ") != std::string::npos);
  // conv1: one input channel, nine terms: the thin direct form where the CPU has AVX-512
  const bool thin = conv2d_thin_applies(testing::conv_shape(1, 48, 48, 64, 3, 3, 1, 1));
  CHECK(d.find(thin ? "[direct fp32 (thin)]" : "[im2col+sgemm]") != std::string::npos);
  CHECK(d.find("winograd") != std::string::npos);
  CHECK(d.find("drop") == std::string::npos);  // dropout is gone
  auto vgg = InferenceGraph::compile(*make_network("vgg", 7, 1), 1, 48, 48);
  const std::string v = vgg->describe();
  INFO(v);
  CHECK(v.find("conv1_2+bn1_2(folded)+relu1_2+pool1") != std::string::npos);  // BN before ReLU: folded
  CHECK(v.find("dense1+bn_dense1(folded)+relu_dense1") != std::string::npos);
}

TEST_CASE("inference graph: refuses what it cannot run, with the layer named") {
  Rng rng(1);
  Sequential net;
  net.add("conv", std::make_shared<Conv2d>(1, 4, 3, "same", rng));
  net.add("bn_alone", std::make_shared<BatchNorm2d>(4));
  net.add("bn_again", std::make_shared<BatchNorm2d>(4));  // a BN with nothing to fold into
  net.add("flatten", std::make_shared<Flatten>());
  net.add("fc", std::make_shared<Linear>(4 * 8 * 8, 2, rng));
  CHECK_THROWS_WITH_AS(InferenceGraph::compile(net, 1, 8, 8), doctest::Contains("bn_again"), Error);
  InferenceOptions o;
  o.conv_algo = "fft";
  CHECK_THROWS_WITH_AS(InferenceGraph::compile(*make_network("paper", 7, 1), 1, 48, 48, o),
                       doctest::Contains("fft"), Error);
  // Too small an input for the paper net's four pools.
  CHECK_THROWS_AS(InferenceGraph::compile(*make_network("paper", 7, 1), 1, 8, 8), Error);
}

TEST_CASE("inference graph: the graph setting (EMOTUNE_GRAPH) chooses the graph, and a wrong value is an error") {
  const std::string path = (std::filesystem::temp_directory_path() / "emotune_graph_test.safetensors").string();
  save_safetensors(path, make_network("paper", 7, 1)->state_dict(),
                   {{"arch", "paper"},
                    {"classes", "[\"angry\",\"disgust\",\"fear\",\"happy\",\"sad\",\"surprise\",\"neutral\"]"},
                    {"preprocess", Preprocess{}.to_json()}});
  const RuntimeSettings saved = runtime_settings();
  RuntimeSettings s;  // the defaults: EMOTUNE_GRAPH unset
  runtime_configure(s);
  CHECK(load_model(path).graph != nullptr);
  s.graph = "inference";
  runtime_configure(s);
  CHECK(load_model(path).graph != nullptr);
  s.graph = "training";
  runtime_configure(s);
  CHECK(load_model(path).graph == nullptr);
  // A wrong value is refused when the settings are given, and leaves the ones in force unchanged.
  RuntimeSettings wrong = s;
  wrong.graph = "fast";
  CHECK_THROWS_WITH_AS(runtime_configure(wrong), doctest::Contains("EMOTUNE_GRAPH='fast'"), Error);
  CHECK(runtime_settings().graph == "training");
  CHECK(load_model(path).graph == nullptr);
  runtime_configure(saved);
  std::filesystem::remove(path);
}

namespace {

// A layer the graph has no step for: a forward, and nothing else a layer may declare
// (layers/module.h). Doubling keeps the logits away from a uniform softmax.
class Doubler : public Module {
 public:
  Tensor forward(const Tensor& x) override { return ops::scale(x, 2.0f); }
  std::string describe() const override { return "Doubler"; }
};

// What the callback writes to stderr (fd 2) while it runs.
template <typename F>
std::string stderr_of(F&& f) {
  std::fflush(stderr);
  char path[] = "/tmp/emotune_stderr_XXXXXX";
  const int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const int saved = dup(2);
  dup2(fd, 2);
  f();
  std::fflush(stderr);
  dup2(saved, 2);
  close(saved);
  std::string text;
  char buf[256];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t k; (k = read(fd, buf, sizeof buf)) > 0;) text.append(buf, (size_t)k);
  close(fd);
  unlink(path);
  return text;
}

}  // namespace

// The trap of issue 24: a new layer trained, then every CPU predict failed to load the model
// because the graph refused it. load_model now compiles through compile_or_fallback (the one
// rule), so such a model predicts with the training graph's forward, after one warning line.
TEST_CASE("inference graph: a layer it cannot compile falls back to the training graph, with one warning") {
  Rng rng(5);
  auto net = std::make_shared<Sequential>();
  net->add("conv", std::make_shared<Conv2d>(1, 4, 3, "same", rng));
  net->add("relu", std::make_shared<ReLU>());
  net->add("double", std::make_shared<Doubler>());
  net->add("flatten", std::make_shared<Flatten>());
  net->add("fc", std::make_shared<Linear>(4 * 8 * 8, 3, rng));
  net->set_training(false);
  CHECK_THROWS_WITH_AS(InferenceGraph::compile(*net, 1, 8, 8), doctest::Contains("'double' (Doubler)"),
                       GraphUnsupported);

  std::shared_ptr<InferenceGraph> graph;
  const std::string warning = stderr_of([&] { graph = InferenceGraph::compile_or_fallback(*net, 1, 8, 8); });
  CHECK(graph == nullptr);
  CHECK(warning.find("warning: ") == 0);
  CHECK(warning.find("'double'") != std::string::npos);
  CHECK(warning.find("training graph") != std::string::npos);
  CHECK(std::count(warning.begin(), warning.end(), '\n') == 1);

  // predict_probabilities over the model load_model would return: the training graph's logits,
  // through the one softmax, bit for bit.
  LoadedModel m;
  m.net = net;
  m.info.classes = {"a", "b", "c"};
  m.info.preprocess.size = 8;
  m.graph = graph;
  const int n = 4;
  const auto x = random_vector((size_t)n * 8 * 8, 21, 0.0f, 1.0f);
  const auto probs = predict_probabilities(m, x.data(), n);
  std::vector<float> logits;
  {
    NoGradGuard no_grad;
    logits = net->forward(Tensor::from_host({n, 1, 8, 8}, x.data())).to_vector();
  }
  REQUIRE(probs.size() == (size_t)n);
  for (int i = 0; i < n; ++i) {
    std::vector<float> want(3);
    softmax_row(logits.data() + (size_t)i * 3, 3, 1.0, want.data());
    CHECK(probs[i] == want);
  }
  CHECK(*std::max_element(probs[0].begin(), probs[0].end()) > 0.34f);  // not a uniform guess
}

TEST_CASE("inference graph: a shape error is not a fallback") {
  Rng rng(1);
  Sequential net;
  net.add("conv", std::make_shared<Conv2d>(3, 4, 3, "same", rng));  // the input has one channel
  net.add("flatten", std::make_shared<Flatten>());
  net.add("fc", std::make_shared<Linear>(4 * 8 * 8, 2, rng));
  CHECK_THROWS_WITH_AS(InferenceGraph::compile_or_fallback(net, 1, 8, 8), doctest::Contains("conv"), Error);
}

// bf16 logits against float32's: each conv and dense layer rounds both its operands to bf16 (2^-8
// relative each), so to first order a layer's output moves by at most 2 * 2^-8 of its own scale;
// the BatchNorms renormalise between layers, so over the networks' at most 10 layers that adds up
// to at most 10 * 2 * 2^-8 = 0.078 of the logits' scale. Measured: 0.8-6.4e-3 for the direct
// form, im2col and Winograd F(2x2) alike (printed by the test; 2026-12-07, Intel family 6 model 167). A BatchNorm affine applied before
// its ReLU instead of after, or a pool dropped, moves logits by O(1).
void check_bf16_close(const std::vector<float>& got, const std::vector<float>& want, const std::string& what) {
  REQUIRE(got.size() == want.size());
  double scale = 0, worst = 0;
  for (float v : want) scale = std::max(scale, (double)std::fabs(v));
  for (size_t i = 0; i < got.size(); ++i) worst = std::max(worst, std::fabs((double)got[i] - want[i]));
  MESSAGE(what << ": worst |bf16 - fp32| = " << worst << " (" << worst / scale << " of max |logit| " << scale << ")");
  CHECK(scale > 0.1);
  CHECK(worst <= 10 * 2 * std::ldexp(1.0, -8) * scale);
}

TEST_CASE("inference graph: bf16 on AMX runs the direct convolution, within bf16's bound of fp32") {
  std::string why;
  if (!testing::isa_or_skip(cpu_bf16_available() && gemm_bf16_amx_available(&why), "amx_bf16",
                            "inference graph, direct bf16"))
    return;
  const Bf16Kernel saved = gemm_bf16_kernel();
  set_gemm_bf16_kernel(Bf16Kernel::amx);
  for (const std::string arch : {"paper", "vgg"}) {
    auto net = make_network(arch, 7, 11);
    randomize_batch_norms(*net, 100);
    const auto fp32 = InferenceGraph::compile(*net, 1, 48, 48);
    set_cpu_precision(Precision::bf16);
    InferenceOptions im2col;
    im2col.conv_algo = "im2col";
    const auto direct = InferenceGraph::compile(*net, 1, 48, 48), other = InferenceGraph::compile(*net, 1, 48, 48, im2col);
    CHECK(direct->describe().find("direct bf16 (amx)") != std::string::npos);
    CHECK(other->describe().find("direct bf16") == std::string::npos);
    for (int n : {1, 3}) {
      auto x = random_vector((size_t)n * 48 * 48, 7 + n, 0.0f, 1.0f);
      set_cpu_precision(Precision::bf16);
      const auto d = direct->forward(x.data(), n), i = other->forward(x.data(), n);
      set_cpu_precision(Precision::fp32);
      const auto f = fp32->forward(x.data(), n);
      const std::string what = arch + " batch " + std::to_string(n);
      check_bf16_close(d, f, what + " direct bf16");
      check_bf16_close(i, f, what + " im2col bf16");
    }
  }
  set_cpu_precision(Precision::fp32);
  set_gemm_bf16_kernel(saved);
}
