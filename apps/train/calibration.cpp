#include "apps/train/calibration.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/train/trainer.h"
#include "base/error.h"
#include "base/softmax.h"
#include "datasets/sampler.h"
#include "engine/checkpoint.h"

namespace emotune {

using ojson = nlohmann::ordered_json;

namespace {

// Keys the halves' shuffles apart from the loader's epoch orders (epoch 0, 1, ...).
constexpr uint64_t kHalvesKey = 0xca11b0000ull;

// -log softmax(z / T)[label] for one face, by log-sum-exp in double.
double nll_one(const float* z, int classes, int label, double temperature) {
  double mx = z[0] / temperature;
  for (int k = 1; k < classes; ++k) mx = std::max(mx, z[k] / temperature);
  double sum = 0;
  for (int k = 0; k < classes; ++k) sum += std::exp(z[k] / temperature - mx);
  return mx + std::log(sum) - z[label] / temperature;
}

// T as the file will store it: 6 significant digits, so that what is reported is what is applied.
double stored_temperature(double t) { return std::strtod(temperature_string(t).c_str(), nullptr); }

ojson stats_json(const CalibrationStats& s) {
  return ojson{{"ece", s.ece}, {"nll", s.nll}, {"accuracy", s.accuracy}};
}

CalibrationStats stats_from_json(const nlohmann::json& j) {
  CalibrationStats s;
  s.ece = j.at("ece").get<double>();
  s.nll = j.at("nll").get<double>();
  s.accuracy = j.value("accuracy", 0.0);
  return s;
}

// The logits and labels of `rows` (one view per face).
void gather(const EvalResult& r, int classes, const std::vector<size_t>& rows, std::vector<float>* logits,
            std::vector<int>* labels) {
  for (size_t i : rows) {
    logits->insert(logits->end(), r.logits.begin() + i * classes, r.logits.begin() + (i + 1) * classes);
    labels->push_back(r.labels[i]);
  }
}

std::string canonical_split(const std::string& name) {
  Split s;
  if (!split_from_name(name, &s))
    throw Error("unknown split '" + name + "' (accepted: " + accepted_split_names() + ")");
  return split_name(s);
}

}  // namespace

std::string temperature_string(double t) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.6g", t);
  return buf;
}

std::vector<float> softmax_at_temperature(const std::vector<float>& logits, int views, int classes,
                                          double temperature) {
  const size_t n = logits.size() / ((size_t)views * classes);
  std::vector<float> probs(n * classes);
  std::vector<double> p(classes), q(classes);
  for (size_t i = 0; i < n; ++i) {
    std::fill(p.begin(), p.end(), 0.0);
    for (int v = 0; v < views; ++v) {
      softmax_row(logits.data() + (i * views + v) * classes, classes, temperature, q.data());
      for (int k = 0; k < classes; ++k) p[k] += q[k] / views;  // double sums, rounded once below
    }
    std::copy(p.begin(), p.end(), probs.begin() + i * classes);
  }
  return probs;
}

double mean_nll_at_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes,
                               double temperature) {
  double total = 0;
  for (size_t i = 0; i < labels.size(); ++i) total += nll_one(logits.data() + i * classes, classes, labels[i], temperature);
  return labels.empty() ? 0 : total / labels.size();
}

double fit_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes) {
  if (labels.empty()) throw Error("fit_temperature: no faces to fit on");
  if (logits.size() != labels.size() * classes)
    throw Error("fit_temperature: " + std::to_string(logits.size()) + " logits for " +
                std::to_string(labels.size()) + " faces of " + std::to_string(classes) + " classes");
  auto f = [&](double log_t) { return mean_nll_at_temperature(logits, labels, classes, std::exp(log_t)); };
  const double g = (std::sqrt(5.0) - 1) / 2;
  double a = std::log(kMinTemperature), b = std::log(kMaxTemperature);
  double c = b - g * (b - a), d = a + g * (b - a);
  double fc = f(c), fd = f(d);
  while (b - a > 1e-10) {
    if (fc < fd) {
      b = d, d = c, fd = fc;
      c = b - g * (b - a), fc = f(c);
    } else {
      a = c, c = d, fc = fd;
      d = a + g * (b - a), fd = f(d);
    }
  }
  return std::exp((a + b) / 2);
}

TemperatureChoice choose_temperature(const std::vector<float>& logits, const std::vector<int>& labels, int classes,
                                     bool always) {
  TemperatureChoice c;
  c.nll_temperature = stored_temperature(fit_temperature(logits, labels, classes));
  c.fit_ece_at_1 = expected_calibration_error(softmax_at_temperature(logits, 1, classes, 1.0), labels, classes);
  c.fit_ece_at_nll =
      expected_calibration_error(softmax_at_temperature(logits, 1, classes, c.nll_temperature), labels, classes);
  c.temperature = always || c.fit_ece_at_nll <= c.fit_ece_at_1 ? c.nll_temperature : 1.0;
  return c;
}

CalibrationStats calibration_stats(const std::vector<float>& probs, const std::vector<int>& labels, int classes,
                                   int bins) {
  CalibrationStats s;
  s.n = (int64_t)labels.size();
  s.bins.assign(bins, {});
  int64_t correct = 0;
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* p = probs.data() + i * classes;
    const int top = (int)(std::max_element(p, p + classes) - p);
    const int b = std::clamp((int)std::ceil(p[top] * (double)bins) - 1, 0, bins - 1);
    ConfidenceBin& bin = s.bins[b];
    bin.count += 1;
    bin.confidence += p[top];
    bin.accuracy += top == labels[i];
    correct += top == labels[i];
    s.nll -= std::log(std::max(1e-12, (double)p[labels[i]]));
  }
  for (ConfidenceBin& bin : s.bins) {
    if (!bin.count) continue;
    bin.confidence /= bin.count;
    bin.accuracy /= bin.count;
    s.ece += (double)bin.count / s.n * std::fabs(bin.accuracy - bin.confidence);
  }
  if (s.n) s.nll /= s.n, s.accuracy = (double)correct / s.n;
  return s;
}

double expected_calibration_error(const std::vector<float>& probs, const std::vector<int>& labels, int classes,
                                  int bins) {
  return calibration_stats(probs, labels, classes, bins).ece;
}

SplitHalves stratified_halves(const std::vector<uint8_t>& labels, uint64_t seed) {
  std::vector<std::vector<size_t>> members;
  for (size_t i = 0; i < labels.size(); ++i) {
    if (labels[i] >= members.size()) members.resize(labels[i] + 1);
    members[labels[i]].push_back(i);
  }
  SplitHalves h;
  int extra_to = 1;  // where the next odd class's extra face goes
  for (size_t c = 0; c < members.size(); ++c) {
    const std::vector<size_t>& m = members[c];
    const std::vector<uint32_t> order = epoch_order(m.size(), true, seed, kHalvesKey + c);
    size_t first = m.size() / 2;
    if (m.size() % 2) first += extra_to == 0, extra_to = 1 - extra_to;
    for (size_t k = 0; k < m.size(); ++k) h.half[k < first ? 0 : 1].push_back(m[order[k]]);
  }
  for (auto& half : h.half) std::sort(half.begin(), half.end());
  return h;
}

std::string CalibrationRecord::to_json() const {
  return ojson{{"method", "temperature scaling"},
               {"temperature", choice.temperature},
               {"rule", "the NLL's temperature on the fit half, applied unless it makes that half's ECE worse"},
               {"nll_temperature", choice.nll_temperature},
               {"fit_ece", {{"at_1", choice.fit_ece_at_1}, {"at_nll_temperature", choice.fit_ece_at_nll}}},
               {"declined", choice.declined()},
               {"split", split},
               {"labels", labels},
               {"data", data},
               {"limit", limit},
               {"seed", seed},
               {"fit_half", fit_half},
               {"holdout", holdout},
               {"report_half", 1 - fit_half},
               {"n_fit", n_fit},
               {"n_report", n_report},
               {"bins", kCalibrationBins},
               {"before", stats_json(before)},
               {"after", stats_json(after)}}
      .dump();
}

bool CalibrationRecord::fitted_on_half_of(const std::string& s, const std::string& l) const {
  return names_split(s) && labels == l && holdout <= 0;
}

bool CalibrationRecord::names_split(const std::string& s) const { return split == canonical_split(s); }

bool CalibrationRecord::same_halves(const CalibrationRecord& o) const {
  return split == o.split && labels == o.labels && seed == o.seed && limit == o.limit && fit_half == o.fit_half &&
         holdout == o.holdout;
}

CalibrationRecord CalibrationRecord::from_json(const std::string& text, const std::string& where) {
  CalibrationRecord r;
  try {
    const nlohmann::json j = nlohmann::json::parse(text);
    r.choice.temperature = j.at("temperature").get<double>();
    r.choice.nll_temperature = j.value("nll_temperature", r.choice.temperature);
    if (j.contains("fit_ece")) {
      r.choice.fit_ece_at_1 = j["fit_ece"].at("at_1").get<double>();
      r.choice.fit_ece_at_nll = j["fit_ece"].at("at_nll_temperature").get<double>();
    }
    r.split = canonical_split(j.at("split").get<std::string>());
    r.labels = j.at("labels").get<std::string>();
    r.data = j.value("data", "");
    r.limit = j.value("limit", (int64_t)0);
    r.seed = j.at("seed").get<uint64_t>();
    r.fit_half = j.at("fit_half").get<int>();
    r.holdout = j.value("holdout", 0.0);
    r.n_fit = j.value("n_fit", (int64_t)0);
    r.n_report = j.value("n_report", (int64_t)0);
    if (j.contains("before")) r.before = stats_from_json(j["before"]);
    if (j.contains("after")) r.after = stats_from_json(j["after"]);
  } catch (const nlohmann::json::exception& e) {
    throw Error(where + ": metadata 'calibration': " + e.what());
  }
  if (r.fit_half != 0 && r.fit_half != 1) throw Error(where + ": metadata 'calibration': fit_half must be 0 or 1");
  return r;
}

CalibrationRecord calibrate_model(const LoadedModel& model, const Dataset& faces, const CalibrationSetup& setup) {
  if (setup.fit_half != 0 && setup.fit_half != 1) throw Error("calibration: the fit half must be 0 or 1");
  const int classes = (int)model.info.classes.size();
  CalibrationRecord rec;
  rec.split = canonical_split(setup.split);
  rec.labels = setup.labels;
  rec.data = std::filesystem::path(setup.data).filename().string();
  rec.seed = setup.seed;
  rec.limit = setup.limit;
  rec.fit_half = setup.fit_half;
  rec.holdout = setup.holdout;
  const SplitHalves h = stratified_halves(faces.labels, setup.seed);
  const std::vector<size_t>& fit = h.half[setup.fit_half];
  const std::vector<size_t>& report = h.half[1 - setup.fit_half];
  if (fit.empty() || report.empty())
    throw Error("calibration: " + std::to_string(faces.size()) + " face(s) in " + rec.split +
                " cannot make two non-empty halves");
  EvalOptions eo = setup.eval;
  eo.tta = TtaMode::none;
  const EvalResult r = evaluate_network(*model.net, faces, model.info.preprocess, classes, eo);
  std::vector<float> fit_logits, report_logits;
  std::vector<int> fit_labels, report_labels;
  gather(r, classes, fit, &fit_logits, &fit_labels);
  gather(r, classes, report, &report_logits, &report_labels);
  rec.choice = choose_temperature(fit_logits, fit_labels, classes, setup.always);
  rec.n_fit = (int64_t)fit.size();
  rec.n_report = (int64_t)report.size();
  rec.before = calibration_stats(softmax_at_temperature(report_logits, 1, classes, 1.0), report_labels, classes);
  rec.after = calibration_stats(softmax_at_temperature(report_logits, 1, classes, rec.choice.temperature),
                                report_labels, classes);
  return rec;
}

void write_calibrated_model(const std::string& in, const std::string& out, const CalibrationRecord& r) {
  Checkpoint ck = load_safetensors(in);
  ck.metadata["temperature"] = temperature_string(r.choice.temperature);
  ck.metadata["calibration"] = r.to_json();
  save_safetensors(out, ck.tensors, ck.metadata, ck.dtype);
}

std::string calibration_summary(const CalibrationRecord& r) {
  char s[480], declined[160] = "";
  const TemperatureChoice& c = r.choice;
  if (c.declined())
    std::snprintf(declined, sizeof declined, " (the NLL's %s declined: it took the fit half's ECE from %.4f to %.4f)",
                  temperature_string(c.nll_temperature).c_str(), c.fit_ece_at_1, c.fit_ece_at_nll);
  std::snprintf(s, sizeof s,
                "temperature %s%s, fitted on half %d of %s (seed %llu, %lld faces); on the other half (%lld "
                "faces), %d bins: ECE %.4f -> %.4f, NLL %.4f -> %.4f",
                temperature_string(c.temperature).c_str(), declined, r.fit_half,
                (r.holdout > 0 ? "the held-out " + std::to_string((int)std::lround(100 * r.holdout)) + "% of " + r.split
                               : r.split)
                    .c_str(),
                (unsigned long long)r.seed,
                (long long)r.n_fit, (long long)r.n_report, kCalibrationBins, r.before.ece, r.after.ece,
                r.before.nll, r.after.nll);
  return s;
}

Dataset load_faces_for_report(TrainConfig config, const std::string& split, int64_t limit,
                              const std::string& calibration_json, std::string* note, Dataset* fit_half) {
  note->clear();
  if (fit_half) *fit_half = Dataset{};
  if (calibration_json.empty()) return load_labelled_split(config, split, limit);
  const CalibrationRecord rec = CalibrationRecord::from_json(calibration_json, "the model");
  if (!rec.names_split(split) || rec.labels != config.labels) return load_labelled_split(config, split, limit);
  if (rec.holdout > 0) {
    *note = "the model's temperature was fitted on a held-out " + std::to_string((int)std::lround(100 * rec.holdout)) +
            "% of " + rec.split + ", which these faces include";
    return load_labelled_split(config, split, limit);
  }
  config.seed = rec.seed;
  const Dataset all = load_labelled_split(config, split, rec.limit);
  const SplitHalves h = stratified_halves(all.labels, rec.seed);
  Dataset d = all.subset(h.half[1 - rec.fit_half]);
  if (fit_half) *fit_half = all.subset(h.half[rec.fit_half]);
  *note = "the model's temperature " + temperature_string(rec.choice.temperature) + " was fitted on half " +
          std::to_string(rec.fit_half) + " of " + rec.split + " (seed " + std::to_string(rec.seed) + ", " +
          std::to_string(h.half[rec.fit_half].size()) + " faces): every figure below is on the other half only (" +
          std::to_string(d.size()) + " faces)";
  if (rec.n_fit + rec.n_report != 0 && (size_t)(rec.n_fit + rec.n_report) != all.size())
    *note += "; WARNING: this split has " + std::to_string(all.size()) + " faces, the calibration saw " +
             std::to_string(rec.n_fit + rec.n_report) + " (other data?), so the halves may not be the same";
  if (limit > 0 && (size_t)limit < d.size()) {
    // A seeded subset of the report half, in file order, as load_labelled_split takes one.
    const std::vector<uint32_t> order = epoch_order(d.size(), true, config.seed, 0xfeed);
    std::vector<size_t> pick(order.begin(), order.begin() + limit);
    std::sort(pick.begin(), pick.end());
    d = d.subset(pick);
    *note += ", of which a seeded subset of " + std::to_string(limit);
  }
  return d;
}

CalibrationComparison compare_calibration(const EvalResult& r, int classes, double temperature,
                                          bool calibrated) {
  CalibrationComparison c;
  c.temperature = temperature;
  c.calibrated = calibrated;
  c.before = calibration_stats(softmax_at_temperature(r.logits, r.views, classes, 1.0), r.labels, classes);
  c.after = calibration_stats(softmax_at_temperature(r.logits, r.views, classes, temperature), r.labels, classes);
  return c;
}

std::string comparison_text(const CalibrationComparison& c) {
  char s[256];
  if (c.declined()) {
    std::snprintf(s, sizeof s,
                  "calibration, %d bins: ECE %.4f, NLL %.4f (the model's temperature is 1: its calibration "
                  "declined the fitted one)",
                  kCalibrationBins, c.before.ece, c.before.nll);
  } else if (c.temperature == 1.0) {
    std::snprintf(s, sizeof s,
                  "calibration, %d bins: ECE %.4f, NLL %.4f (the model's temperature is 1: none fitted; "
                  "emotune calibrate fits one)",
                  kCalibrationBins, c.before.ece, c.before.nll);
  } else {
    std::snprintf(s, sizeof s, "calibration, %d bins: ECE %.4f at T = 1 -> %.4f at the model's T = %s; NLL %.4f -> %.4f",
                  kCalibrationBins, c.before.ece, c.after.ece, temperature_string(c.temperature).c_str(), c.before.nll,
                  c.after.nll);
  }
  return s;
}

std::string comparison_json(const CalibrationComparison& c) {
  return ojson{{"bins", kCalibrationBins},
               {"temperature", c.temperature},
               {"before", stats_json(c.before)},
               {"after", stats_json(c.after)}}
      .dump();
}

}  // namespace emotune
