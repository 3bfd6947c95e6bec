#include "apps/train/config.h"

#include <fstream>

#include "base/error.h"

namespace emotune {

namespace {

template <typename T>
ConfigKey key(const char* name, T TrainConfig::*member, const char* help) {
  ConfigKey k;
  k.key = name;
  k.help = help;
  if constexpr (std::is_same_v<T, std::string>) k.type = "string";
  else if constexpr (std::is_same_v<T, bool>) k.type = "bool";
  else if constexpr (std::is_floating_point_v<T>) k.type = "float";
  else k.type = "int";
  std::string type = k.type, n = name;
  k.set = [member, type, n](TrainConfig& c, const nlohmann::json& v) {
    bool ok = type == "string" ? v.is_string()
              : type == "bool" ? v.is_boolean()
              : type == "float" ? v.is_number()
              : (v.is_number_integer() && !(std::is_unsigned_v<T> && v.get<int64_t>() < 0));
    if (!ok) throw Error("config key '" + n + "' must be of type " + type + ", got " + v.dump());
    c.*member = v.get<T>();
  };
  k.get = [member](const TrainConfig& c) { return nlohmann::json(c.*member); };
  return k;
}

}  // namespace

const std::vector<ConfigKey>& train_config_keys() {
  using C = TrainConfig;
  static const std::vector<ConfigKey> keys = {
      key("name", &C::name, "run name; the run folder is <out>/<name>"),
      key("out", &C::out, "folder holding run folders"),
      key("arch", &C::arch, "network: paper | vgg | resnet18"),
      key("data", &C::data, "FER-2013 csv (.gz/.xz), packed .u8.xz, or image-folder root"),
      key("format", &C::format, "data format: auto | csv | packed | folders"),
      key("labels", &C::labels, "labels: fer2013 | ferplus-majority | ferplus-distribution"),
      key("ferplus", &C::ferplus, "fer2013new.csv for the FER+ label modes"),
      key("classes", &C::classes, "number of classes: 7, or 8 with FER+ contempt"),
      key("train_split", &C::train_split, "split trained on (Training)"),
      key("val_split", &C::val_split,
          "split used to select the best epoch (PublicTest); with val_fraction > 0, the split reported once at the end"),
      key("val_fraction", &C::val_fraction,
          "> 0: validate (best epoch, plateau, calibration) on this seeded, stratified fraction of train_split, held out of training"),
      key("epochs", &C::epochs, "epochs to train"),
      key("batch_size", &C::batch_size, "batch size"),
      key("optimizer", &C::optimizer, "sgd | adam | adamw"),
      key("lr", &C::lr, "base learning rate"),
      key("momentum", &C::momentum, "SGD momentum"),
      key("nesterov", &C::nesterov, "SGD Nesterov momentum"),
      key("weight_decay", &C::weight_decay, "weight decay on conv/dense kernels (AdamW: decoupled)"),
      key("beta1", &C::beta1, "Adam beta1"),
      key("beta2", &C::beta2, "Adam beta2"),
      key("eps", &C::eps, "Adam epsilon"),
      key("schedule", &C::schedule, "learning-rate schedule: constant | step | cosine | plateau"),
      key("min_lr", &C::min_lr, "cosine/plateau floor"),
      key("warmup_epochs", &C::warmup_epochs, "cosine: linear warm-up epochs"),
      key("step_size", &C::step_size, "step: epochs between decays"),
      key("gamma", &C::gamma, "step: decay factor"),
      key("plateau_factor", &C::plateau_factor, "plateau: decay factor"),
      key("plateau_patience", &C::plateau_patience, "plateau: epochs without improvement"),
      key("augment", &C::augment, "augmentation: none | full | crop=4,flip,rotate=10,..."),
      key("balance", &C::balance, "class balance: none | sampler | loss-weights"),
      key("label_smoothing", &C::label_smoothing, "label smoothing in [0, 1)"),
      key("mixup", &C::mixup, "mixup alpha: images and targets mixed in pairs by Beta(alpha, alpha) per batch (0: off)"),
      key("seed", &C::seed, "seed for initialisation, shuffling, augmentation and dropout"),
      key("init", &C::init, "weight initialisation: keras (glorot, zero bias) | torch (PyTorch defaults)"),
      key("device", &C::device, "cpu | cuda"),
      key("threads", &C::threads, "batch-loader threads"),
      key("precision", &C::precision,
          "CPU conv/dense products: fp32 | bf16 (AVX512-BF16, fp32 sums and master weights) | auto (bf16 where the CPU has it)"),
      key("limit_train", &C::limit_train, "train on a seeded subset of this many samples (0: all)"),
      key("limit_val", &C::limit_val, "validate on a seeded subset of this many samples (0: all)"),
      key("skip_bad", &C::skip_bad, "skip malformed rows/images with a warning instead of failing"),
      key("max_loss", &C::max_loss, "stop when the loss exceeds this or is not finite"),
      key("save_dtype", &C::save_dtype, "dtype of the exported model: F32 | F16 | BF16"),
      key("export_epoch", &C::export_epoch,
          "epoch exported as model.safetensors: best (on the validation split) | last"),
      key("reference_curve", &C::reference_curve,
          "CSV of epoch,accuracy (a header line names the curve) drawn beside the validation accuracy in curves.png"),
  };
  return keys;
}

nlohmann::ordered_json TrainConfig::to_json() const {
  nlohmann::ordered_json j;
  for (const auto& k : train_config_keys()) j[k.key] = k.get(*this);
  return j;
}

void TrainConfig::apply_json(const nlohmann::json& j, const std::string& where) {
  if (!j.is_object()) throw Error(where + ": a training config must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key().rfind("_", 0) == 0) continue;  // "_comment" and friends
    const ConfigKey* found = nullptr;
    for (const auto& k : train_config_keys())
      if (k.key == it.key()) found = &k;
    if (!found) throw Error(where + ": unknown config key '" + it.key() + "'");
    try {
      found->set(*this, it.value());
    } catch (const Error& e) {
      throw Error(where + ": " + e.what());
    }
  }
}

void TrainConfig::validate() const {
  auto need = [](bool ok, const std::string& what) {
    if (!ok) throw Error("config: " + what);
  };
  need(!data.empty(), "'data' is required (a FER-2013 csv, packed file or image folder)");
  need(epochs >= 1, "'epochs' must be >= 1");
  need(batch_size >= 2, "'batch_size' must be >= 2 (batch norm needs two samples)");
  need(lr > 0, "'lr' must be > 0");
  need(classes == 7 || classes == 8, "'classes' must be 7 or 8");
  need(optimizer == "sgd" || optimizer == "adam" || optimizer == "adamw",
       "'optimizer' must be sgd, adam or adamw");
  need(labels == "fer2013" || labels == "ferplus-majority" || labels == "ferplus-distribution",
       "'labels' must be fer2013, ferplus-majority or ferplus-distribution");
  need(labels == "fer2013" || !ferplus.empty(), "'ferplus' (fer2013new.csv) is required for FER+ labels");
  need(classes == 7 || labels != "fer2013", "8 classes need FER+ labels (contempt)");
  need(label_smoothing >= 0 && label_smoothing < 1, "'label_smoothing' must be in [0, 1)");
  need(mixup >= 0 && mixup <= 10, "'mixup' must be in [0, 10] (0: off)");
  need(init == "keras" || init == "torch", "'init' must be keras or torch");
  need(export_epoch == "best" || export_epoch == "last", "'export_epoch' must be best or last");
  need(threads >= 0, "'threads' must be >= 0");
  need(val_fraction >= 0 && val_fraction <= 0.5, "'val_fraction' must be in [0, 0.5]");
  need(precision == "fp32" || precision == "bf16" || precision == "auto", "'precision' must be fp32, bf16 or auto");
  need(limit_train >= 0 && limit_val >= 0, "limits must be >= 0");
  need(max_loss > 0, "'max_loss' must be > 0");
  need(!name.empty() && name.find('/') == std::string::npos, "'name' must be a plain folder name");
}

TrainConfig load_train_config(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open config");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const nlohmann::json::exception& e) {
    throw Error(path + ": not valid JSON: " + e.what());
  }
  TrainConfig c;
  c.apply_json(j, path);
  return c;
}

}  // namespace emotune
