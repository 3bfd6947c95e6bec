// Our stronger network, in the VGG family (Simonyan & Zisserman 2015; on FER-2013 see
// Khaireddin & Chen 2021, "Facial Emotion Recognition: State of the Art Performance on FER2013"):
// four stages of two 3x3 conv - BN - ReLU blocks, max-pool 2 and dropout after each stage,
// then a small dense head.
//   stage widths 64, 128, 256, 384 at 48, 24, 12, 6 pixels; 6 -> 3 after the last pool
//   head: Flatten (384*3*3 = 3456) -> Dense 256 - BN - ReLU - Dropout 0.5 -> Dense 7
// Convs carry no bias (the BN that follows has one). He-uniform init suits the ReLUs.
// 4.25 M parameters: 8.5 MB as fp16, under the 10 MB budget for a shipped model.
// Stage 4 stops at 384 channels, not VGG's 512: 512 would cost 11.7 MB in fp16.
#include "layers/nets/nets.h"

namespace emotune {

std::shared_ptr<Sequential> make_vgg_net(int num_classes, uint64_t seed) {
  Rng rng(derive_seed(seed, 1));
  auto net = std::make_shared<Sequential>();
  const int widths[4] = {64, 128, 256, 384};
  const float drops[4] = {0.1f, 0.2f, 0.3f, 0.4f};
  int in = 1;
  for (int s = 0; s < 4; ++s) {
    for (int b = 0; b < 2; ++b) {
      std::string id = std::to_string(s + 1) + "_" + std::to_string(b + 1);
      net->add("conv" + id, std::make_shared<Conv2d>(in, widths[s], 3, "same", rng, false, 1, "he_uniform"));
      net->add("bn" + id, std::make_shared<BatchNorm2d>(widths[s], 0.1f, 1e-5f));
      net->add("relu" + id, std::make_shared<ReLU>());
      in = widths[s];
    }
    net->add("pool" + std::to_string(s + 1), std::make_shared<MaxPool2d>(2));
    net->add("drop" + std::to_string(s + 1), std::make_shared<Dropout>(drops[s]));
  }
  net->add("flatten", std::make_shared<Flatten>());
  net->add("dense1", std::make_shared<Linear>(384 * 3 * 3, 256, rng, 0.0f, "he_uniform"));
  net->add("bn_dense1", std::make_shared<BatchNorm2d>(256, 0.1f, 1e-5f));
  net->add("relu_dense1", std::make_shared<ReLU>());
  net->add("drop_dense1", std::make_shared<Dropout>(0.5f));
  net->add("dense2", std::make_shared<Linear>(256, num_classes, rng));
  net->set_seed(derive_seed(seed, 2));
  return net;
}

}  // namespace emotune
