#include "apps/train/history.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "apps/train/plot.h"
#include "base/error.h"
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

ReferenceCurve read_reference_curve(const std::string& path) {
  std::ifstream f(path);
  if (!f) throw Error(path + ": cannot open the reference curve");
  auto fail = [&](int line, const std::string& what) {
    throw Error(path + ":" + std::to_string(line) + ": " + what);
  };
  ReferenceCurve rc;
  std::string line;
  int n = 0;
  if (!std::getline(f, line)) fail(1, "empty file (expected a header \"epoch,<label>\")");
  ++n;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const size_t comma = line.find(',');
  if (comma == std::string::npos || line.substr(0, comma) != "epoch" || comma + 1 == line.size())
    fail(1, "the header must be \"epoch,<label>\", got \"" + line + "\"");
  rc.label = line.substr(comma + 1);
  std::vector<std::pair<int, double>> rows;
  while (std::getline(f, line)) {
    ++n;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty()) continue;
    const size_t c = line.find(',');
    if (c == std::string::npos) fail(n, "expected \"<epoch>,<accuracy>\", got \"" + line + "\"");
    char* end = nullptr;
    const std::string es = line.substr(0, c), as = line.substr(c + 1);
    const long epoch = std::strtol(es.c_str(), &end, 10);
    if (es.empty() || *end || epoch < 1 || epoch > 100000) fail(n, "epoch \"" + es + "\" is not a whole number >= 1");
    const double acc = std::strtod(as.c_str(), &end);
    if (as.empty() || *end || !std::isfinite(acc) || acc < 0 || acc > 100)
      fail(n, "accuracy \"" + as + "\" is not a number in [0, 1] or [0, 100]");
    for (const auto& r : rows)
      if (r.first == epoch) fail(n, "epoch " + es + " appears twice");
    rows.push_back({(int)epoch, acc});
  }
  if (rows.empty()) fail(n, "no rows after the header");
  bool percent = false;
  for (const auto& r : rows) percent |= r.second > 1;
  for (const auto& r : rows) {
    if ((size_t)r.first > rc.percent.size()) rc.percent.resize(r.first, NAN);
    rc.percent[r.first - 1] = percent ? r.second : 100 * r.second;
  }
  return rc;
}

void write_curves(const std::string& path, const std::vector<EpochRecord>& h, const std::string& title,
                  const ReferenceCurve& reference) {
  CurveSeries tl{"train", {}}, vl{"validation", {}}, ta{"train", {}}, va{"validation", {}};
  for (const auto& r : h) {
    tl.values.push_back(r.train_loss);
    vl.values.push_back(r.val_loss);
    ta.values.push_back(100 * r.train_acc);
    va.values.push_back(100 * r.val_acc);
  }
  std::vector<CurveSeries> acc = {ta, va};
  if (!reference.label.empty()) acc.push_back({reference.label, reference.percent});
  plot_training_curves(path, {tl, vl}, acc, title);
}

}  // namespace emotune
