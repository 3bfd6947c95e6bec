// Training configuration: one flat table of keys drives the JSON config files
// (configs/<name>.json), the command-line flags (--batch-size for "batch_size"), and the resolved
// config written into every run folder. Unknown keys and values of the wrong type are errors
// naming the key (and the file).
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace emotune {

struct TrainConfig {
  std::string name = "run";        // run folder: <out>/<name>
  std::string out = "runs";
  std::string arch = "paper";      // paper | vgg
  std::string data;                // fer2013.csv[.gz|.xz], packed .u8.xz, or image folder root
  std::string format = "auto";     // auto | csv | packed | folders
  std::string labels = "fer2013";  // fer2013 | ferplus-majority | ferplus-distribution
  std::string ferplus;             // fer2013new.csv for the ferplus label modes
  int classes = 7;                 // 7, or 8 with FER+ contempt
  std::string train_split = "Training";
  std::string val_split = "PublicTest";
  int epochs = 30;
  int batch_size = 64;
  std::string optimizer = "adam";  // sgd | adam | adamw
  double lr = 1e-3;
  double momentum = 0.9;
  bool nesterov = false;
  double weight_decay = 0.0;
  double beta1 = 0.9, beta2 = 0.999, eps = 1e-7;
  std::string schedule = "constant";  // constant | step | cosine | plateau
  double min_lr = 0.0;
  int warmup_epochs = 0;
  int step_size = 10;
  double gamma = 0.1;
  double plateau_factor = 0.5;
  int plateau_patience = 3;
  std::string augment = "none";    // datasets/augment.h AugmentOptions::parse spec
  std::string balance = "none";    // none | sampler | loss-weights
  double label_smoothing = 0.0;
  double mixup = 0.0;              // > 0: mixup's Beta(alpha, alpha) (datasets/mixup.h); 0: off
  uint64_t seed = 1;
  std::string init = "keras";      // keras | torch: weight initialisation (layers/nets/nets.h)
  std::string device = "cpu";      // cpu | cuda
  int threads = 2;                 // batch-loader threads
  std::string precision = "fp32";  // fp32 | bf16 | auto: the CPU's conv and dense products (kernels/runtime.h)
  double val_fraction = 0.0;       // > 0: validate on this held-out slice of train_split (apps/train/holdout.h)
  int64_t limit_train = 0;         // use a seeded subset of this many training samples (0: all)
  int64_t limit_val = 0;
  bool skip_bad = false;
  double max_loss = 100.0;         // a loss above this (or NaN) stops training
  std::string save_dtype = "F16";  // dtype of the exported model.safetensors
  std::string export_epoch = "best";  // best | last: which epoch model.safetensors holds
  std::string reference_curve;     // CSV "epoch,<label>" drawn beside the validation accuracy (history.h)

  nlohmann::ordered_json to_json() const;
  // Overlays the keys of `j` onto this config; `where` names the source in errors.
  void apply_json(const nlohmann::json& j, const std::string& where);
  void validate() const;  // throws Error naming the bad key
};

// One entry per key, in declaration order: name, help text, and typed accessors.
struct ConfigKey {
  std::string key;
  std::string help;
  std::string type;  // "string" | "int" | "float" | "bool"
  std::function<void(TrainConfig&, const nlohmann::json&)> set;
  std::function<nlohmann::json(const TrainConfig&)> get;
};
const std::vector<ConfigKey>& train_config_keys();

TrainConfig load_train_config(const std::string& path);

}  // namespace emotune
