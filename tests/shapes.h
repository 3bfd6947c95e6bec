// The shared shape table (CUTLASS's conv2d_problems.h idea): every real layer shape of the shipped
// networks plus edge cases. Tests use it with a small batch, benchmarks with batch 64 and 128.
#pragma once
#include <string>
#include <vector>

#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/max_pool2d.h"

namespace emotune::testing {

// The batch of the whole-step GPU test (test_cuda_train_step.cpp); the conv2d parity tests run
// every real layer at it too, because split counts and tuned tiles depend on the batch.
constexpr int kTrainStepBatch = 8;

struct ConvCase {
  std::string name;
  Conv2dShape shape;  // n is a placeholder: callers set the batch
  bool real;          // a layer of a shipped network (benchmarked), not only an edge case
};

inline Conv2dShape conv_shape(int c, int h, int w, int k, int r, int s, int pad, int stride) {
  Conv2dShape p;
  p.n = 1; p.c = c; p.h = h; p.w = w; p.k = k; p.r = r; p.s = s;
  p.pad_h = p.pad_w = pad; p.stride_h = p.stride_w = stride;
  return p;
}

inline const std::vector<ConvCase>& conv_cases() {
  static const std::vector<ConvCase> cases = {
      // paper network (48x48x1 input), in order
      {"paper.conv1 1->64 48x48 same", conv_shape(1, 48, 48, 64, 3, 3, 1, 1), true},
      {"paper.conv2 64->64 48x48 valid", conv_shape(64, 48, 48, 64, 3, 3, 0, 1), true},
      {"paper.conv3 64->128 23x23 same", conv_shape(64, 23, 23, 128, 3, 3, 1, 1), true},
      {"paper.conv4 128->128 23x23 same", conv_shape(128, 23, 23, 128, 3, 3, 1, 1), true},
      {"paper.conv5 128->256 11x11 same", conv_shape(128, 11, 11, 256, 3, 3, 1, 1), true},
      {"paper.conv6 256->256 11x11 same", conv_shape(256, 11, 11, 256, 3, 3, 1, 1), true},
      {"paper.conv7 256->512 5x5 same", conv_shape(256, 5, 5, 512, 3, 3, 1, 1), true},
      // vgg network (48x48x1 input, same padding, no bias), in order
      {"vgg.conv1_1 1->64 48x48", conv_shape(1, 48, 48, 64, 3, 3, 1, 1), true},
      {"vgg.conv1_2 64->64 48x48", conv_shape(64, 48, 48, 64, 3, 3, 1, 1), true},
      {"vgg.conv2_1 64->128 24x24", conv_shape(64, 24, 24, 128, 3, 3, 1, 1), true},
      {"vgg.conv2_2 128->128 24x24", conv_shape(128, 24, 24, 128, 3, 3, 1, 1), true},
      {"vgg.conv3_1 128->256 12x12", conv_shape(128, 12, 12, 256, 3, 3, 1, 1), true},
      {"vgg.conv3_2 256->256 12x12", conv_shape(256, 12, 12, 256, 3, 3, 1, 1), true},
      {"vgg.conv4_1 256->384 6x6", conv_shape(256, 6, 6, 384, 3, 3, 1, 1), true},
      {"vgg.conv4_2 384->384 6x6", conv_shape(384, 6, 6, 384, 3, 3, 1, 1), true},
      // edge cases: 1x1, strides, odd sizes, channels off every tile multiple, big kernels
      {"edge 1x1 3->5 7x5", conv_shape(3, 7, 5, 5, 1, 1, 0, 1), false},
      {"edge 3x3 s2 3->5 9x7 pad1", conv_shape(3, 9, 7, 5, 3, 3, 1, 2), false},
      {"edge 5x5 s3 5->7 6x6 pad2", conv_shape(5, 6, 6, 7, 5, 5, 2, 3), false},
      {"edge 3x3 17->33 13x11 pad1", conv_shape(17, 13, 11, 33, 3, 3, 1, 1), false},
      {"edge 3x3 2->3 3x3 valid", conv_shape(2, 3, 3, 3, 3, 3, 0, 1), false},
      {"edge 1x3 4->6 5x8 pad0", []{ auto p = conv_shape(4, 5, 8, 6, 1, 3, 0, 1); return p; }(), false},
  };
  return cases;
}

struct PoolCase {
  std::string name;
  Pool2dShape shape;
};

inline Pool2dShape pool_shape(int c, int h, int w, int k, int stride) {
  Pool2dShape p;
  p.n = 1; p.c = c; p.h = h; p.w = w; p.kh = p.kw = k; p.stride_h = p.stride_w = stride;
  return p;
}

inline const std::vector<PoolCase>& pool_cases() {
  static const std::vector<PoolCase> cases = {
      {"paper.pool1 64@46x46", pool_shape(64, 46, 46, 2, 2)},
      {"paper.pool2 128@23x23 (odd, floor)", pool_shape(128, 23, 23, 2, 2)},
      {"paper.pool3 256@11x11", pool_shape(256, 11, 11, 2, 2)},
      {"paper.pool4 512@5x5", pool_shape(512, 5, 5, 2, 2)},
      {"vgg.pool1 64@48x48", pool_shape(64, 48, 48, 2, 2)},
      {"vgg.pool2 128@24x24", pool_shape(128, 24, 24, 2, 2)},
      {"vgg.pool3 256@12x12", pool_shape(256, 12, 12, 2, 2)},
      {"vgg.pool4 384@6x6", pool_shape(384, 6, 6, 2, 2)},
      {"edge overlapping 3x3 s2 3@7x5", pool_shape(3, 7, 5, 3, 2)},
      {"edge 2x2 s1 1@4x4", pool_shape(1, 4, 4, 2, 1)},
  };
  return cases;
}

struct BatchNormCase {
  std::string name;
  BatchNormShape shape;  // n is a placeholder
};

inline const std::vector<BatchNormCase>& batch_norm_cases() {
  static const std::vector<BatchNormCase> cases = {
      {"paper.bn1 64@46x46", {1, 64, 46 * 46}},
      {"paper.bn2 128@11x11", {1, 128, 11 * 11}},  // after pool in vgg / before in paper: both sizes occur
      {"paper.bn2b 128@23x23", {1, 128, 23 * 23}},
      {"paper.bn3 256@11x11", {1, 256, 11 * 11}},
      {"paper.bn4 512@5x5", {1, 512, 5 * 5}},
      {"vgg.bn1 64@48x48", {1, 64, 48 * 48}},
      {"vgg.bn2 128@24x24", {1, 128, 24 * 24}},
      {"vgg.bn3 256@12x12", {1, 256, 12 * 12}},
      {"vgg.bn4 384@6x6", {1, 384, 6 * 6}},
      {"vgg.bn_dense1 256@1", {1, 256, 1}},
      {"edge dense 7@1", {1, 7, 1}},
      {"edge 3@3x5", {1, 3, 15}},
  };
  return cases;
}

struct LinearCase {
  std::string name;
  LinearShape shape;  // n is a placeholder
};

inline const std::vector<LinearCase>& linear_cases() {
  static const std::vector<LinearCase> cases = {
      {"paper.dense1 2048->1024", {1, 2048, 1024}},
      {"paper.dense2 1024->7", {1, 1024, 7}},
      {"vgg.dense1 3456->256", {1, 3456, 256}},
      {"vgg.dense2 256->7", {1, 256, 7}},
      {"edge 5->3", {1, 5, 3}},
      {"edge 33->17", {1, 33, 17}},
  };
  return cases;
}

}  // namespace emotune::testing
