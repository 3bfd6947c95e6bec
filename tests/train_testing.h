// The small CPU training run the training and fault tests share: the paper network on the
// synthetic CSV of testing::write_synthetic_csv (dir/tiny.csv), written into dir/runs/<name>;
// a synthetic data set of distinct faces; and a model file of the paper network with random weights.
#pragma once
#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "apps/train/config.h"
#include "base/preprocess.h"
#include "datasets/dataset.h"
#include "engine/checkpoint.h"
#include "kernels/philox.h"
#include "layers/nets/nets.h"

namespace emotune::testing {

// n random faces (Philox from `seed`), labels cycling 0..6, all in Training: no two batches share
// their pixels, so a test can tell any two batches apart (the upload-order tests).
inline Dataset distinct_faces(size_t n, uint64_t seed) {
  Dataset d;
  d.source = "synthetic";
  std::vector<uint8_t> px(kFacePixels);
  for (size_t i = 0; i < n; ++i) {
    for (int k = 0; k < kFacePixels; ++k) px[k] = (uint8_t)(philox_uniform(seed, i * kFacePixels + k) * 256);
    d.push(px.data(), (int)(i % 7), Split::training, (int32_t)i, (int32_t)i + 2);
  }
  return d;
}

// dir/name.safetensors: the paper network with weights seeded by `seed`, FER-2013's seven classes,
// the default preprocessing, and `extra` metadata on top (temperature, calibration, ...).
inline std::string paper_model_file(const std::string& dir, const std::string& name,
                                    const std::map<std::string, std::string>& extra = {}, uint64_t seed = 1234) {
  const std::vector<std::string> fer = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};
  std::map<std::string, std::string> meta = {
      {"arch", "paper"}, {"classes", nlohmann::json(fer).dump()}, {"preprocess", Preprocess{}.to_json()}};
  for (const auto& [k, v] : extra) meta[k] = v;
  const std::string path = dir + "/" + name + ".safetensors";
  save_safetensors(path, make_paper_net(7, seed)->state_dict(), meta);
  return path;
}

inline TrainConfig tiny_train_config(const std::string& dir, const std::string& name) {
  TrainConfig c;
  c.name = name;
  c.out = dir + "/runs";
  c.arch = "paper";
  c.data = dir + "/tiny.csv";
  c.epochs = 3;
  c.batch_size = 8;
  c.optimizer = "adam";
  c.lr = 1e-3;
  c.augment = "crop=2,flip";
  c.threads = 1;
  c.seed = 5;
  return c;
}

}  // namespace emotune::testing
