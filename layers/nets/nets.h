// The networks, by name. Each builds a Sequential whose child names are the checkpoint keys.
//   paper: the seed project's final 7-conv CNN, exactly (nets/paper.cpp)
//   vgg:   our stronger VGG-style variant (nets/vgg.cpp)
//   resnet18: a ResNet-18 for 48x48 input (nets/resnet.cpp)
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "layers/layers.h"

namespace emotune {

std::shared_ptr<Sequential> make_paper_net(int num_classes, uint64_t seed);
std::shared_ptr<Sequential> make_vgg_net(int num_classes, uint64_t seed);
std::shared_ptr<Sequential> make_resnet18_net(int num_classes, uint64_t seed);
// Throws Error naming the known architectures when `arch` is unknown.
// init: "keras" builds the network as its file says (Keras defaults: glorot_uniform kernels, zero
// biases); "torch" then redraws every Conv2d and Linear with PyTorch's defaults: kernel and bias
// U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (kaiming_uniform with a = sqrt(5)), about 1.7x narrower
// kernels for the paper network's convs and 6x less logit variance at its head.
std::shared_ptr<Sequential> make_network(const std::string& arch, int num_classes, uint64_t seed,
                                         const std::string& init = "keras");
const std::vector<std::string>& network_names();

// The activation Grad-CAM explains by default (layers/gradcam.h), by network, or "" for the
// generic rule (the first ReLU after the last Conv2d). paper: "relu7", the rule's choice (5x5).
// vgg: "relu4_1" (6x6), one block earlier than the rule's relu4_2: at relu4_2 the predicted
// class has no positive evidence (an all-zero map) for 131 of 300 PublicTest faces with the
// shipped model, at relu4_1 for none (paper at relu7: 12 of 300). Measured 2026-12-06, every
// 10th PublicTest face, models/*.safetensors. resnet18: "res4_2", its last block (6x6; the generic
// rule would find the stem's relu1, the only ReLU outside the blocks).
std::string explained_layer(const std::string& arch);

}  // namespace emotune
