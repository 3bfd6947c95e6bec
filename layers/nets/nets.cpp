#include "layers/nets/nets.h"

#include <cmath>

#include "layers/init.h"

namespace emotune {

const std::vector<std::string>& network_names() {
  static const std::vector<std::string> names = {"paper", "vgg"};
  return names;
}

namespace {

// Kernel [OUT, IN] or [K, C, R, S]: fan_in = numel / OUT either way. A layer without bias
// (vgg's convs) keeps none.
void init_torch_layer(Tensor& weight, Tensor& bias, Rng& rng) {
  const float limit = 1.0f / std::sqrt((float)(weight.numel() / weight.shape()[0]));
  init_uniform(weight, limit, rng);
  if (bias.defined()) init_uniform(bias, limit, rng);
}

void init_torch_defaults(Sequential& net, Rng& rng) {
  for (const auto& child : net.children()) {
    if (auto* conv = dynamic_cast<Conv2d*>(child.module.get()))
      init_torch_layer(conv->weight, conv->bias, rng);
    else if (auto* fc = dynamic_cast<Linear*>(child.module.get()))
      init_torch_layer(fc->weight, fc->bias, rng);
    else if (auto* seq = dynamic_cast<Sequential*>(child.module.get()))
      init_torch_defaults(*seq, rng);
  }
}

}  // namespace

std::string explained_layer(const std::string& arch) { return arch == "vgg" ? "relu4_1" : ""; }

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
  if (init == "torch") {
    Rng rng(derive_seed(seed, 3));
    init_torch_defaults(*net, rng);
  }
  return net;
}

}  // namespace emotune
