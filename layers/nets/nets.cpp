#include "layers/nets/nets.h"

#include <cmath>

namespace emotune {

const std::vector<std::string>& network_names() {
  static const std::vector<std::string> names = {"paper", "vgg"};
  return names;
}

namespace {

void redraw_uniform(Tensor& t, float limit, Rng& rng) {
  if (!t.defined()) return;
  std::vector<float> v((size_t)t.numel());
  for (float& x : v) x = rng.uniform(-limit, limit);
  t.copy_from(Tensor::from_vector(t.shape(), v));
}

void init_torch_defaults(Sequential& net, uint64_t seed) {
  Rng rng(derive_seed(seed, 3));
  for (const auto& child : net.children()) {
    if (auto* conv = dynamic_cast<Conv2d*>(child.module.get())) {
      const int64_t fan_in = conv->weight.numel() / conv->weight.shape()[0];
      const float limit = 1.0f / std::sqrt((float)fan_in);
      redraw_uniform(conv->weight, limit, rng);
      redraw_uniform(conv->bias, limit, rng);
    } else if (auto* fc = dynamic_cast<Linear*>(child.module.get())) {
      const int64_t fan_in = fc->weight.shape()[1];
      const float limit = 1.0f / std::sqrt((float)fan_in);
      redraw_uniform(fc->weight, limit, rng);
      redraw_uniform(fc->bias, limit, rng);
    } else if (auto* seq = dynamic_cast<Sequential*>(child.module.get())) {
      init_torch_defaults(*seq, derive_seed(seed, 4));
    }
  }
}

}  // namespace

std::shared_ptr<Sequential> make_network(const std::string& arch, int num_classes, uint64_t seed,
                                         const std::string& init) {
  if (num_classes < 2) throw Error("network: need at least 2 classes");
  if (init != "keras" && init != "torch") throw Error("unknown initialisation '" + init + "' (keras, torch)");
  std::shared_ptr<Sequential> net;
  if (arch == "paper") net = make_paper_net(num_classes, seed);
  if (arch == "vgg") net = make_vgg_net(num_classes, seed);
  if (!net) {
    std::string known;
    for (const auto& n : network_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown network '" + arch + "' (known: " + known + ")");
  }
  if (init == "torch") init_torch_defaults(*net, seed);
  return net;
}

}  // namespace emotune
