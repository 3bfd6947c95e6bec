#include "layers/gradcam.h"

#include <algorithm>
#include <cmath>

#include "base/error.h"
#include "base/softmax.h"
#include "engine/autograd.h"
#include "layers/layers.h"
#include "layers/nets/nets.h"

namespace emotune {

namespace {

const Sequential& as_sequential(const Module& net) {
  auto* seq = dynamic_cast<const Sequential*>(&net);
  if (!seq) throw Error("Grad-CAM: the network is not a Sequential");
  return *seq;
}

// Parameters not requiring gradients for its lifetime, so that the backward pass computes the
// activation's gradient only (no weight gradients, nothing written into the network's .grad).
class FrozenParameters {
 public:
  explicit FrozenParameters(Module& net) : params_(net.parameters()) {
    for (ParamRef& p : params_) {
      was_.push_back(p.tensor.requires_grad());
      p.tensor.set_requires_grad(false);
    }
  }
  ~FrozenParameters() {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].tensor.set_requires_grad(was_[i]);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<ParamRef> params_;
  std::vector<bool> was_;
};

}  // namespace

size_t gradcam_layer(const Module& net, const std::string& name) {
  const auto& children = as_sequential(net).children();
  if (!name.empty()) {
    for (size_t i = 0; i < children.size(); ++i)
      if (children[i].name == name) return i;
    throw Error("Grad-CAM: the network has no layer '" + name + "'");
  }
  size_t conv = children.size();
  for (size_t i = 0; i < children.size(); ++i) {
    if (dynamic_cast<const Flatten*>(children[i].module.get())) break;
    if (dynamic_cast<const Conv2d*>(children[i].module.get())) conv = i;
  }
  if (conv == children.size()) throw Error("Grad-CAM: the network has no Conv2d before its Flatten");
  for (size_t i = conv + 1; i < children.size(); ++i) {
    const Module* m = children[i].module.get();
    if (dynamic_cast<const ReLU*>(m)) return i;
    if (dynamic_cast<const Flatten*>(m)) break;
  }
  return conv;
}

GradCam grad_cam(const LoadedModel& model, const float* input, int target) {
  auto* net = dynamic_cast<Sequential*>(model.net.get());
  if (!net) throw Error("Grad-CAM: the network is not a Sequential");
  const int s = model.info.preprocess.size;
  const int classes = (int)model.info.classes.size();
  if (target >= classes)
    throw Error("Grad-CAM: class " + std::to_string(target) + " is out of range (the model has " +
                std::to_string(classes) + " classes)");
  const size_t layer = gradcam_layer(*net, explained_layer(model.info.arch));
  net->set_training(false);
  FrozenParameters frozen(*net);

  Tensor activation;
  {
    NoGradGuard no_grad;
    const Tensor x = Tensor::from_host({1, 1, s, s}, input, model.device);
    activation = net->forward_range(x, 0, layer + 1);
  }
  if (activation.ndim() != 4) throw Error("Grad-CAM: the explained activation is not [1, C, H, W]");
  activation.set_requires_grad(true);
  const Tensor logits = net->forward_range(activation, layer + 1, net->children().size());
  const std::vector<float> z = logits.to_vector();
  if ((int)z.size() != classes)
    throw Error("Grad-CAM: the network gives " + std::to_string(z.size()) + " logits for " +
                std::to_string(classes) + " classes");

  GradCam cam;
  cam.layer = net->children()[layer].name;
  cam.probabilities.resize(classes);
  softmax_row(z.data(), classes, model.info.temperature, cam.probabilities.data());
  cam.target = target >= 0 ? target : (int)(std::max_element(z.begin(), z.end()) - z.begin());

  std::vector<float> seed(classes, 0.0f);
  seed[cam.target] = 1.0f;
  run_backward(logits, Tensor::from_vector(logits.shape(), seed, model.device));
  const Tensor grad = activation.grad();
  if (!grad.defined()) throw Error("Grad-CAM: no gradient reached layer " + cam.layer);
  const std::vector<float> a = activation.to_vector(), g = grad.to_vector();

  const int channels = (int)activation.dim(1);
  cam.height = (int)activation.dim(2);
  cam.width = (int)activation.dim(3);
  const size_t plane = (size_t)cam.height * cam.width;
  std::vector<double> acc(plane, 0.0);
  for (int k = 0; k < channels; ++k) {
    const float* gk = g.data() + k * plane;
    const float* ak = a.data() + k * plane;
    double alpha = 0;
    for (size_t i = 0; i < plane; ++i) alpha += gk[i];
    alpha /= (double)plane;
    for (size_t i = 0; i < plane; ++i) acc[i] += alpha * ak[i];
  }
  cam.map.resize(plane);
  for (size_t i = 0; i < plane; ++i) cam.map[i] = (float)std::max(0.0, acc[i]);
  return cam;
}

std::vector<float> upsample_map(const GradCam& cam, int size) {
  if (cam.height < 1 || cam.width < 1 || size < 1) throw Error("upsample_map: empty map or size");
  std::vector<float> out((size_t)size * size);
  auto source = [size](int dst, int src_len, int* i0, int* i1, float* frac) {
    const double f = std::clamp((dst + 0.5) * src_len / size - 0.5, 0.0, (double)(src_len - 1));
    *i0 = (int)std::floor(f);
    *i1 = std::min(*i0 + 1, src_len - 1);
    *frac = (float)(f - *i0);
  };
  for (int y = 0; y < size; ++y) {
    int y0, y1;
    float fy;
    source(y, cam.height, &y0, &y1, &fy);
    for (int x = 0; x < size; ++x) {
      int x0, x1;
      float fx;
      source(x, cam.width, &x0, &x1, &fx);
      const float* m = cam.map.data();
      const float top = m[y0 * cam.width + x0] * (1 - fx) + m[y0 * cam.width + x1] * fx;
      const float bottom = m[y1 * cam.width + x0] * (1 - fx) + m[y1 * cam.width + x1] * fx;
      out[(size_t)y * size + x] = top * (1 - fy) + bottom * fy;
    }
  }
  return out;
}

}  // namespace emotune
