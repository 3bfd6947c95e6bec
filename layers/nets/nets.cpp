#include "layers/nets/nets.h"

#include "layers/init.h"

namespace emotune {

const std::vector<std::string>& network_names() {
  static const std::vector<std::string> names = {"paper", "vgg", "resnet18"};
  return names;
}

std::string explained_layer(const std::string& arch) {
  if (arch == "vgg") return "relu4_1";
  if (arch == "resnet18") return "res4_2";  // the last block's output (6x6), after its ReLU
  return "";
}

std::shared_ptr<Sequential> make_network(const std::string& arch, int num_classes, uint64_t seed,
                                         const std::string& init) {
  if (num_classes < 2) throw Error("network: need at least 2 classes");
  if (init != "keras" && init != "torch") throw Error("unknown initialisation '" + init + "' (keras, torch)");
  std::shared_ptr<Sequential> net;
  if (arch == "paper") net = make_paper_net(num_classes, seed);
  if (arch == "vgg") net = make_vgg_net(num_classes, seed);
  if (arch == "resnet18") net = make_resnet18_net(num_classes, seed);
  if (!net) {
    std::string known;
    for (const auto& n : network_names()) known += (known.empty() ? "" : ", ") + n;
    throw Error("unknown network '" + arch + "' (known: " + known + ")");
  }
  if (init == "torch") {
    Rng rng(derive_seed(seed, 3));
    net->init_torch(rng);  // each Conv2d and Linear in order (init_torch_uniform)
  }
  return net;
}

}  // namespace emotune
