#include "layers/nets/nets.h"

namespace emotune {

const std::vector<std::string>& network_names() {
  static const std::vector<std::string> names = {"paper", "vgg"};
  return names;
}

std::shared_ptr<Sequential> make_network(const std::string& arch, int num_classes, uint64_t seed) {
  if (num_classes < 2) throw Error("network: need at least 2 classes");
  if (arch == "paper") return make_paper_net(num_classes, seed);
  if (arch == "vgg") return make_vgg_net(num_classes, seed);
  std::string known;
  for (const auto& n : network_names()) known += (known.empty() ? "" : ", ") + n;
  throw Error("unknown network '" + arch + "' (known: " + known + ")");
}

}  // namespace emotune
