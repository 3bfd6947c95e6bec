// The seed project's final network, layer for layer (Keras, input 48x48x1 scaled to [0, 1]):
//   Conv64 3x3 same, ReLU; Conv64 3x3 valid, ReLU; BN; MaxPool 2; Dropout 0.3
//   Conv128 same, ReLU; Conv128 same, ReLU; BN; MaxPool 2; Dropout 0.4
//   Conv256 same, ReLU; Conv256 same, ReLU; BN; MaxPool 2; Dropout 0.4
//   Conv512 same, ReLU; BN; MaxPool 2; Dropout 0.5
//   Flatten (2048); Dense 1024, ReLU, L2 0.001 on its kernel; Dropout 0.6; Dense 7 (softmax in the loss)
// Shapes: 48 -> 48 -> 46 -> 23 -> 23 -> 11 -> 11 -> 5 -> 5 -> 2; 2*2*512 = 2048.
// 4,433,607 numbers as Keras counts them (BN running statistics included).
// Keras defaults kept: glorot_uniform kernels, zero biases, BN momentum 0.99 (0.01 here), eps 1e-3.
// One deliberate difference: Flatten reads NCHW (channel-major), Keras NHWC; for a network
// trained from scratch this only permutes dense1's input rows.
#include "layers/nets/nets.h"

namespace emotune {

std::shared_ptr<Sequential> make_paper_net(int num_classes, uint64_t seed) {
  Rng rng(derive_seed(seed, 1));
  auto net = std::make_shared<Sequential>();
  auto conv = [&](const char* name, int in, int out, const char* padding) {
    net->add(name, std::make_shared<Conv2d>(in, out, 3, padding, rng));
  };
  auto relu = [&](const char* name) { net->add(name, std::make_shared<ReLU>()); };
  conv("conv1", 1, 64, "same");    relu("relu1");
  conv("conv2", 64, 64, "valid");  relu("relu2");
  net->add("bn1", std::make_shared<BatchNorm2d>(64));
  net->add("pool1", std::make_shared<MaxPool2d>(2));
  net->add("drop1", std::make_shared<Dropout>(0.3f));

  conv("conv3", 64, 128, "same");  relu("relu3");
  conv("conv4", 128, 128, "same"); relu("relu4");
  net->add("bn2", std::make_shared<BatchNorm2d>(128));
  net->add("pool2", std::make_shared<MaxPool2d>(2));
  net->add("drop2", std::make_shared<Dropout>(0.4f));

  conv("conv5", 128, 256, "same"); relu("relu5");
  conv("conv6", 256, 256, "same"); relu("relu6");
  net->add("bn3", std::make_shared<BatchNorm2d>(256));
  net->add("pool3", std::make_shared<MaxPool2d>(2));
  net->add("drop3", std::make_shared<Dropout>(0.4f));

  conv("conv7", 256, 512, "same"); relu("relu7");
  net->add("bn4", std::make_shared<BatchNorm2d>(512));
  net->add("pool4", std::make_shared<MaxPool2d>(2));
  net->add("drop4", std::make_shared<Dropout>(0.5f));

  net->add("flatten", std::make_shared<Flatten>());
  net->add("dense1", std::make_shared<Linear>(2048, 1024, rng, 0.001f));
  relu("relu8");
  net->add("drop5", std::make_shared<Dropout>(0.6f));
  net->add("dense2", std::make_shared<Linear>(1024, num_classes, rng));
  net->set_seed(derive_seed(seed, 2));
  return net;
}

}  // namespace emotune
