// A ResNet-18 for 48x48 grey faces (He et al. 2016, "Deep Residual Learning for Image Recognition"),
// in the form FER-2013 work uses it (e.g. LetheSec/Fer2013-Facial-Emotion-Recognition-Pytorch, the
// CIFAR-style stem): a 3x3 stem with no max-pool, four stages of two basic blocks, global average
// pooling, one dense layer.
//   stem:   conv1 3x3 1->64 - bn1 - relu1                                      48x48
//   stages: res<s>_<b>, widths 64, 128, 256, 512, the first block of stages 2-4 with stride 2
//           (48, 24, 12, 6 pixels); a block is conv1 3x3 - bn1 - relu1 - conv2 3x3 - bn2, plus
//           its input (identity) or, where the shape changes, down_conv 1x1 stride 2 - down_bn;
//           then ReLU (layers.h Residual)
//   head:   pool (global average, 512) - drop (dropout 0.2) - fc 512 -> classes
// Convs carry no bias (BN follows each), he_uniform init; BN momentum 0.1, eps 1e-5 (PyTorch's).
// 11.2 M parameters: 22 MB as fp16, over the 10 MB limit for one shipped file (issue 26 allows a
// model that does not fit to stay a recipe).
#include "layers/nets/nets.h"

namespace emotune {

namespace {

std::shared_ptr<Residual> basic_block(int in, int out, int stride, Rng& rng) {
  auto body = std::make_shared<Sequential>();
  body->add("conv1", std::make_shared<Conv2d>(in, out, 3, "half", rng, false, stride, "he_uniform"));
  body->add("bn1", std::make_shared<BatchNorm2d>(out, 0.1f, 1e-5f));
  body->add("relu1", std::make_shared<ReLU>());
  body->add("conv2", std::make_shared<Conv2d>(out, out, 3, "same", rng, false, 1, "he_uniform"));
  body->add("bn2", std::make_shared<BatchNorm2d>(out, 0.1f, 1e-5f));
  std::shared_ptr<Sequential> shortcut;
  if (stride != 1 || in != out) {
    shortcut = std::make_shared<Sequential>();
    shortcut->add("down_conv", std::make_shared<Conv2d>(in, out, 1, "valid", rng, false, stride, "he_uniform"));
    shortcut->add("down_bn", std::make_shared<BatchNorm2d>(out, 0.1f, 1e-5f));
  }
  return std::make_shared<Residual>(body, shortcut);
}

}  // namespace

std::shared_ptr<Sequential> make_resnet18_net(int num_classes, uint64_t seed) {
  Rng rng(derive_seed(seed, 1));
  auto net = std::make_shared<Sequential>();
  net->add("conv1", std::make_shared<Conv2d>(1, 64, 3, "same", rng, false, 1, "he_uniform"));
  net->add("bn1", std::make_shared<BatchNorm2d>(64, 0.1f, 1e-5f));
  net->add("relu1", std::make_shared<ReLU>());
  const int widths[4] = {64, 128, 256, 512};
  int in = 64;
  for (int s = 0; s < 4; ++s)
    for (int b = 0; b < 2; ++b) {
      const int stride = s > 0 && b == 0 ? 2 : 1;
      net->add("res" + std::to_string(s + 1) + "_" + std::to_string(b + 1), basic_block(in, widths[s], stride, rng));
      in = widths[s];
    }
  net->add("pool", std::make_shared<GlobalAvgPool2d>());
  net->add("drop", std::make_shared<Dropout>(0.2f));
  net->add("fc", std::make_shared<Linear>(512, num_classes, rng));
  net->set_seed(derive_seed(seed, 2));
  return net;
}

}  // namespace emotune
