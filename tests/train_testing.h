// The small CPU training run the training and fault tests share: the paper network on the
// synthetic CSV of testing::write_synthetic_csv (dir/tiny.csv), written into dir/runs/<name>.
#pragma once
#include <string>

#include "apps/train/config.h"

namespace emotune::testing {

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
