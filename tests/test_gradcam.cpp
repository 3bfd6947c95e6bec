// Grad-CAM (layers/gradcam.h): a synthetic network whose answer is known in closed form, the
// layer each shipped network explains, and the maps of both shipped models on a real face.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "base/error.h"
#include "base/image.h"
#include "engine/rng.h"
#include "layers/gradcam.h"
#include "layers/layers.h"
#include "layers/model.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

constexpr int kSide = 48;

// conv1: 1x1, channel 0 = x, channel 1 = -x; relu1; bn (eval, gamma 2 on channel 0, 1 on
// channel 1, running mean 0, var 1, eps 0); flatten; dense: class 0 = sum of channel 0,
// class 1 = -sum of channel 0, class 2 = sum of channel 1, the others 0.
// So with A = relu1's output, d y_0 / d A^0_ij = 2 everywhere and 0 for A^1: alpha = (2, 0) and
// the map of class 0 is 2 relu(x); class 1 gives alpha = (-2, 0), a map of zeros after the
// ReLU; class 2 gives alpha = (0, 1), the map relu(-x).
LoadedModel synthetic_model() {
  Rng rng(1);
  auto net = std::make_shared<Sequential>();
  auto conv = std::make_shared<Conv2d>(1, 2, 1, "same", rng);
  conv->weight.data()[0] = 1.0f;
  conv->weight.data()[1] = -1.0f;
  conv->bias.fill_(0.0f);
  auto bn = std::make_shared<BatchNorm2d>(2, 0.1f, 0.0f);
  bn->gamma.data()[0] = 2.0f;
  auto dense = std::make_shared<Linear>(2 * kSide * kSide, 7, rng);
  dense->weight.fill_(0.0f);
  dense->bias.fill_(0.0f);
  const int plane = kSide * kSide;
  float* w = dense->weight.data();
  for (int i = 0; i < plane; ++i) {
    w[0 * 2 * plane + i] = 1.0f;            // class 0 reads channel 0
    w[1 * 2 * plane + i] = -1.0f;           // class 1 reads channel 0, negatively
    w[2 * 2 * plane + plane + i] = 1.0f;    // class 2 reads channel 1
  }
  net->add("conv1", conv).add("relu1", std::make_shared<ReLU>()).add("bn", bn);
  net->add("flatten", std::make_shared<Flatten>()).add("dense", dense);
  net->set_training(false);
  LoadedModel m;
  m.net = net;
  m.info.arch = "synthetic";
  m.info.classes = {"a", "b", "c", "d", "e", "f", "g"};
  m.info.preprocess.size = kSide;
  return m;
}

// A face-sized input: +0.8 in a 10x12 patch at rows 30-39, columns 5-16, -0.05 elsewhere, so
// that only the patch can raise class 0 (logit 2 * 0.8 * 120 = 192; class 2 gets 0.05 * 2184).
std::vector<float> patch_input() {
  std::vector<float> x((size_t)kSide * kSide, -0.05f);
  for (int y = 30; y < 40; ++y)
    for (int c = 5; c < 17; ++c) x[(size_t)y * kSide + c] = 0.8f;
  return x;
}

}  // namespace

TEST_CASE("Grad-CAM of a network with a known answer: the map is 2 relu(x) for class 0, and peaks on the patch") {
  LoadedModel m = synthetic_model();
  const std::vector<float> x = patch_input();
  GradCam cam = grad_cam(m, x.data(), 0);
  CHECK(cam.layer == "relu1");
  CHECK(cam.target == 0);
  REQUIRE(cam.height == kSide);
  REQUIRE(cam.width == kSide);
  // alpha_0 = 2 exactly (a mean of equal gradients), map = 2 * 0.8 on the patch, 0 elsewhere:
  // float products of exact small numbers, so exact.
  for (int y = 0; y < kSide; ++y)
    for (int c = 0; c < kSide; ++c) {
      const bool in = y >= 30 && y < 40 && c >= 5 && c < 17;
      INFO("pixel " << y << "," << c);
      CHECK(cam.map[(size_t)y * kSide + c] == doctest::Approx(in ? 1.6 : 0.0).epsilon(1e-6));
    }
  // The predicted class: class 0's logit 192 is the largest (class 2: 109.2).
  GradCam top = grad_cam(m, x.data());
  CHECK(top.target == 0);
  CHECK(top.probabilities[0] > 0.99f);
  // Class 1 reads channel 0 negatively: every alpha <= 0, the map is zero after the ReLU.
  GradCam neg = grad_cam(m, x.data(), 1);
  CHECK(*std::max_element(neg.map.begin(), neg.map.end()) == 0.0f);
  // Class 2 reads channel 1 (= relu(-x)): the map is 0.05 off the patch and 0 on it.
  GradCam other = grad_cam(m, x.data(), 2);
  CHECK(other.map[(size_t)35 * kSide + 10] == 0.0f);
  CHECK(other.map[(size_t)5 * kSide + 40] == doctest::Approx(0.05).epsilon(1e-6));
  CHECK_THROWS_WITH_AS(grad_cam(m, x.data(), 7), doctest::Contains("class 7 is out of range"), Error);
  // The network is left as it was: parameters still require gradients and got none.
  for (const ParamRef& p : m.net->parameters()) {
    CHECK(p.tensor.requires_grad());
    CHECK_FALSE(p.tensor.grad().defined());
  }
}

TEST_CASE("upsample_map: bilinear with OpenCV's pixel-centre alignment; constant maps stay constant") {
  GradCam c;
  c.height = 2;
  c.width = 2;
  c.map = {0, 1, 2, 3};
  std::vector<float> up = upsample_map(c, 4);
  // Destination pixel x maps to (x + 0.5) / 2 - 0.5: -0.25 (clamped to 0), 0.25, 0.75, 1.25 (1).
  const float want[4][4] = {{0, 0.25f, 0.75f, 1}, {0.5f, 0.75f, 1.25f, 1.5f}, {1.5f, 1.75f, 2.25f, 2.5f}, {2, 2.25f, 2.75f, 3}};
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) CHECK(up[y * 4 + x] == doctest::Approx(want[y][x]));
  c.map = {0.7f, 0.7f, 0.7f, 0.7f};
  for (float v : upsample_map(c, 48)) CHECK(v == doctest::Approx(0.7f));
}

TEST_CASE("Grad-CAM of the shipped models on a real face: finite, non-negative, the layer named, the forward's probabilities") {
  const std::vector<float> face = [] {
    GrayImage img = load_gray_image(testing::source_dir() + "/tests/data/app/face48.png");
    std::vector<float> x(img.pixels.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = img.pixels[i] / 255.0f;
    return x;
  }();
  struct Want {
    const char* file;
    const char* layer;
    int side;
  };
  for (const Want& w : {Want{"paper", "relu7", 5}, Want{"vgg", "relu4_1", 6}}) {
    INFO(std::string(w.file));
    LoadedModel m = load_model(testing::source_dir() + "/models/" + w.file + ".safetensors");
    GradCam cam = grad_cam(m, face.data());
    CHECK(cam.layer == w.layer);
    CHECK(cam.height == w.side);
    CHECK(cam.width == w.side);
    double total = 0;
    for (float v : cam.map) {
      CHECK(std::isfinite(v));
      CHECK(v >= 0.0f);
      total += v;
    }
    CHECK(total > 0);  // the predicted class has some evidence somewhere
    // The training graph's eval forward against the inference graph: the same function computed
    // in another order (Winograd, folded BN); 1e-4 absolute on probabilities is ~100x the
    // differences seen (test_inference_graph bounds the logits the same way).
    std::vector<std::vector<float>> p = predict_probabilities(m, face.data(), 1);
    EMOTUNE_CHECK_CLOSE(testing::allclose(cam.probabilities, p[0], 1e-4, 0));
    CHECK(cam.target == (int)(std::max_element(p[0].begin(), p[0].end()) - p[0].begin()));
  }
}
