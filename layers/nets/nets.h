// The networks, by name. Each builds a Sequential whose child names are the checkpoint keys.
//   paper: the seed project's final 7-conv CNN, exactly (nets/paper.cpp)
//   vgg:   our stronger VGG-style variant (nets/vgg.cpp)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace emotune {

std::shared_ptr<Sequential> make_paper_net(int num_classes, uint64_t seed);
std::shared_ptr<Sequential> make_vgg_net(int num_classes, uint64_t seed);
// Throws Error naming the known architectures when `arch` is unknown.
std::shared_ptr<Sequential> make_network(const std::string& arch, int num_classes, uint64_t seed);
const std::vector<std::string>& network_names();

}  // namespace emotune
