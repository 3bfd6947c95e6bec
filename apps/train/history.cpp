#include "apps/train/history.h"

#include <cstdio>
#include <sstream>

#include "apps/train/plot.h"
#include "engine/checkpoint.h"

namespace emotune {

using json = nlohmann::json;

namespace {

json record_json(const EpochRecord& r) {
  return {{"epoch", r.epoch}, {"lr", r.lr}, {"train_loss", r.train_loss}, {"train_acc", r.train_acc},
          {"val_loss", r.val_loss}, {"val_acc", r.val_acc}, {"val_macro_f1", r.val_macro_f1},
          {"seconds", r.seconds}, {"images_per_s", r.images_per_s}};
}

EpochRecord record_from_json(const json& j) {
  EpochRecord r;
  r.epoch = j.at("epoch");
  r.lr = j.at("lr");
  r.train_loss = j.at("train_loss");
  r.train_acc = j.at("train_acc");
  r.val_loss = j.at("val_loss");
  r.val_acc = j.at("val_acc");
  r.val_macro_f1 = j.at("val_macro_f1");
  r.seconds = j.at("seconds");
  r.images_per_s = j.at("images_per_s");
  return r;
}

}  // namespace

json history_json(const std::vector<EpochRecord>& history) {
  json out = json::array();
  for (const auto& r : history) out.push_back(record_json(r));
  return out;
}

std::vector<EpochRecord> history_from_json(const json& j) {
  std::vector<EpochRecord> out;
  for (const auto& r : j) out.push_back(record_from_json(r));
  return out;
}

void write_metrics_csv(const std::string& path, const std::vector<EpochRecord>& history) {
  std::ostringstream os;
  os << "epoch,lr,train_loss,train_acc,val_loss,val_acc,val_macro_f1,seconds,images_per_s\n";
  char buf[256];
  for (const auto& r : history) {
    std::snprintf(buf, sizeof buf, "%d,%.6g,%.6f,%.6f,%.6f,%.6f,%.6f,%.2f,%.1f\n", r.epoch + 1, r.lr,
                  r.train_loss, r.train_acc, r.val_loss, r.val_acc, r.val_macro_f1, r.seconds,
                  r.images_per_s);
    os << buf;
  }
  write_file_atomic(path, os.str());
}

void write_curves(const std::string& path, const std::vector<EpochRecord>& h, const std::string& title) {
  CurveSeries tl{"train", {}}, vl{"validation", {}}, ta{"train", {}}, va{"validation", {}};
  for (const auto& r : h) {
    tl.values.push_back(r.train_loss);
    vl.values.push_back(r.val_loss);
    ta.values.push_back(100 * r.train_acc);
    va.values.push_back(100 * r.val_acc);
  }
  plot_training_curves(path, {tl, vl}, {ta, va}, title);
}

}  // namespace emotune
