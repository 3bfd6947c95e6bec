// `emotune evaluate`: accuracy, top-2, per-class precision/recall/F1, macro-F1, balanced accuracy
// and the confusion matrix (table and PNG) of a model on a split, without and with test-time
// augmentation (flip, ten-crop); and its calibration: ECE (15 bins) and NLL at T = 1 and at the
// model's temperature, with a reliability diagram (apps/train/calibration.h). When the
// temperature was fitted on half of this split, only the other half is evaluated, and it says so.
// Several --model options evaluate their equal-weight ensemble (apps/train/ensemble.h): each
// member alone, then the average of their calibrated probabilities.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/train/calibration.h"
#include "apps/train/ensemble.h"
#include "apps/train/evaluation.h"
#include "apps/train/plot.h"
#include "apps/train/trainer.h"
#include "engine/checkpoint.h"
#include "engine/runtime.h"
#include "layers/model.h"

namespace emotune {

namespace {

// One row per face in the order evaluated: its index there, true class, predicted class (the first
// largest probability, as the metrics count it) and that probability. Written whole, then renamed
// into place.
void write_predictions_csv(const std::string& path, const std::vector<float>& probs, const std::vector<int>& labels,
                           int classes) {
  std::string out = "face,label,predicted,top_probability\n";
  char line[96];
  for (size_t i = 0; i < labels.size(); ++i) {
    const float* p = probs.data() + i * classes;
    int best = 0;
    for (int k = 1; k < classes; ++k)
      if (p[k] > p[best]) best = k;
    std::snprintf(line, sizeof line, "%zu,%d,%d,%.6f\n", i, labels[i], best, p[best]);
    out += line;
  }
  write_file_atomic(path, out);
}

struct Args {
  std::vector<std::string> models;  // empty: the default model
  std::string split = "PublicTest", tta = "all", out, device = "cpu", precision = "fp32";
  std::string predictions;  // CSV of each face's prediction (the last TTA mode's)
  TrainConfig c;  // the data options
  int64_t limit = 0;
  int batch = 256;
  int tta_crop = 44;
  bool json = false;
  bool ensemble_temperature = false;  // fit the ensemble's own T on the members' fit half
};

std::vector<std::string> tta_modes(const Args& a) {
  return a.tta == "all" ? std::vector<std::string>{"none", "flip", "ten-crop"} : std::vector<std::string>{a.tta};
}

EvalOptions eval_options(const Args& a, Device dev, const std::string& mode) {
  EvalOptions eo;
  eo.device = dev;
  eo.tta = tta_mode_from_name(mode);
  eo.tta_crop = a.tta_crop;
  eo.batch_size = a.batch;
  eo.progress = true;
  return eo;
}

// --out: metrics-<mode>.json, confusion-<mode>.png and reliability-<mode>.png of one TTA mode of
// `subject` (an architecture, or "ensemble of N").
void write_mode_files(const Args& a, const std::string& mode, const nlohmann::ordered_json& js, const Metrics& m,
                      const std::vector<std::string>& classes, const std::string& subject, bool report_half,
                      const std::vector<ReliabilityPanel>& panels, size_t faces) {
  if (a.out.empty()) return;
  const std::string what = subject + " on " + a.split + (report_half ? " (report half)" : "") + ", TTA " + mode;
  write_file_atomic(a.out + "/metrics-" + mode + ".json", js.dump(2) + "\n");
  plot_confusion_matrix(a.out + "/confusion-" + mode + ".png", m.confusion, classes, what);
  plot_reliability_diagram(a.out + "/reliability-" + mode + ".png", panels,
                           what + ", " + std::to_string(faces) + " faces");
}

void evaluate_one(const Args& a, Device dev, const std::string& model_path) {
  LoadedModel m = load_model(model_path, dev);
  TrainConfig c = a.c;
  c.classes = (int)m.info.classes.size();
  std::string note;  // which faces, when the model's temperature was fitted on part of this split
  Dataset d = load_faces_for_report(c, a.split, a.limit, m.info.calibration, &note);
  if (!note.empty() && !a.json) std::printf("note: %s\n\n", note.c_str());
  nlohmann::ordered_json all;
  for (const auto& mode : tta_modes(a)) {
    EvalResult r = evaluate_network(*m.net, d, m.info.preprocess, c.classes, eval_options(a, dev, mode));
    if (!a.predictions.empty()) write_predictions_csv(a.predictions, r.probs, r.labels, c.classes);
    const CalibrationComparison cal =
        compare_calibration(r, c.classes, m.info.temperature, !m.info.calibration.empty());
    auto js = nlohmann::ordered_json::parse(metrics_json(r.metrics, m.info.classes));
    js["calibration"] = nlohmann::ordered_json::parse(comparison_json(cal));
    if (!note.empty()) js["faces"] = note;
    all[mode] = js;
    if (!a.json) {
      std::printf("== %s, %s split, test-time augmentation: %s\n%s%s\n\n", model_path.c_str(), a.split.c_str(),
                  mode.c_str(), format_metrics(r.metrics, m.info.classes).c_str(), comparison_text(cal).c_str());
    }
    const std::string after = cal.declined() ? "T = 1, NLL's T declined" : "T = " + temperature_string(cal.temperature);
    write_mode_files(a, mode, js, r.metrics, m.info.classes, m.info.arch, !note.empty(),
                     {{"T = 1", cal.before}, {after, cal.after}}, d.size());
  }
  if (a.json) std::printf("%s\n", all.dump(2).c_str());
}

void evaluate_ensemble(const Args& a, Device dev, const std::vector<std::string>& paths) {
  std::vector<LoadedModel> ms;
  std::vector<std::string> calibrations;
  for (const auto& path : paths) {
    ms.push_back(load_model(path, dev));
    if (ms.back().info.classes != ms[0].info.classes)
      throw Error(path + ": its classes differ from " + paths[0] + "'s; an ensemble averages the same classes");
    calibrations.push_back(ms.back().info.calibration);
  }
  const std::vector<std::string>& classes = ms[0].info.classes;
  TrainConfig c = a.c;
  c.classes = (int)classes.size();
  std::string note;
  Dataset fit;  // --ensemble-temperature: the half the members' temperatures were fitted on
  Dataset d = load_faces_for_ensemble_report(c, a.split, a.limit, calibrations, paths, &note,
                                             a.ensemble_temperature ? &fit : nullptr);
  if (!note.empty() && !a.json) std::printf("note: %s\n\n", note.c_str());
  nlohmann::ordered_json all;
  for (const auto& mode : tta_modes(a)) {
    std::vector<EnsembleMember> members;
    for (size_t i = 0; i < ms.size(); ++i) {
      members.push_back({paths[i], ms[i].info.temperature,
                         evaluate_network(*ms[i].net, d, ms[i].info.preprocess, c.classes, eval_options(a, dev, mode))});
    }
    const EnsembleResult e = combine_ensemble(members, c.classes);
    TemperatureChoice own;  // the ensemble's own T (1 unless --ensemble-temperature)
    CalibrationStats own_stats = e.calibrated;
    if (a.ensemble_temperature) {
      std::vector<EnsembleMember> on_fit;
      for (size_t i = 0; i < ms.size(); ++i)
        on_fit.push_back({paths[i], ms[i].info.temperature,
                          evaluate_network(*ms[i].net, fit, ms[i].info.preprocess, c.classes, eval_options(a, dev, mode))});
      const EnsembleResult f = combine_ensemble(on_fit, c.classes);
      own = fit_ensemble_temperature(f.probs, f.labels, c.classes);
      own_stats = calibration_stats(probabilities_at_temperature(e.probs, c.classes, own.temperature), e.labels,
                                    c.classes);
    }
    if (!a.predictions.empty()) write_predictions_csv(a.predictions, e.probs, e.labels, c.classes);
    auto js = nlohmann::ordered_json::parse(metrics_json(e.metrics, classes));
    nlohmann::ordered_json mj = nlohmann::ordered_json::array();
    for (size_t i = 0; i < members.size(); ++i) {
      mj.push_back({{"model", paths[i]},
                    {"temperature", members[i].temperature},
                    {"accuracy", e.member_metrics[i].accuracy},
                    {"macro_f1", e.member_metrics[i].macro_f1},
                    {"nll", e.member_metrics[i].loss}});
    }
    js["members"] = mj;
    js["weights"] = "equal";
    js["calibration"] = {{"bins", kCalibrationBins},
                         {"at_1", {{"ece", e.at_1.ece}, {"nll", e.at_1.nll}, {"accuracy", e.at_1.accuracy}}},
                         {"members_t", {{"ece", e.calibrated.ece}, {"nll", e.calibrated.nll},
                                        {"accuracy", e.calibrated.accuracy}}}};
    if (a.ensemble_temperature) {
      js["ensemble_temperature"] = {{"temperature", own.temperature},
                                    {"nll_temperature", own.nll_temperature},
                                    {"declined", own.declined()},
                                    {"fit_faces", fit.size()},
                                    {"fit_ece", {{"at_1", own.fit_ece_at_1}, {"at_nll_temperature", own.fit_ece_at_nll}}},
                                    {"after", {{"ece", own_stats.ece}, {"nll", own_stats.nll}, {"accuracy", own_stats.accuracy}}}};
    }
    if (!note.empty()) js["faces"] = note;
    all[mode] = js;
    if (!a.json) {
      std::printf("== ensemble of %zu, %s split, test-time augmentation: %s\n", members.size(), a.split.c_str(),
                  mode.c_str());
      for (size_t i = 0; i < members.size(); ++i)
        std::printf("   member %s: accuracy %.2f%%, macro-F1 %.4f (T = %s)\n", paths[i].c_str(),
                    100 * e.member_metrics[i].accuracy, e.member_metrics[i].macro_f1,
                    temperature_string(members[i].temperature).c_str());
      std::printf("%s%s\n", format_metrics(e.metrics, classes).c_str(), ensemble_calibration_text(e).c_str());
      if (a.ensemble_temperature)
        std::printf("the ensemble's own T = %s%s, fitted on the other half (%zu faces): ECE %.4f -> %.4f, NLL %.4f -> %.4f\n",
                    temperature_string(own.temperature).c_str(), own.declined() ? " (the NLL's T declined)" : "",
                    fit.size(), e.calibrated.ece, own_stats.ece, e.calibrated.nll, own_stats.nll);
      std::printf("\n");
    }
    std::vector<ReliabilityPanel> panels = {{"all at T = 1", e.at_1}, {"each member's T", e.calibrated}};
    if (a.ensemble_temperature) panels.push_back({"ensemble T = " + temperature_string(own.temperature), own_stats});
    write_mode_files(a, mode, js, e.metrics, classes, "ensemble of " + std::to_string(members.size()), !note.empty(),
                     panels, d.size());
  }
  if (a.json) std::printf("%s\n", all.dump(2).c_str());
}

}  // namespace

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "measure a model, or an ensemble of models, on a FER-2013 split");
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->models,
                  std::string("checkpoint (safetensors; default ") + kDefaultModel +
                      "); give it several times for the equal-weight ensemble of their calibrated probabilities");
  add_data_options(cmd, a->c);
  cmd->add_option("--split", a->split, "split to evaluate")->capture_default_str();
  cmd->add_option("--tta", a->tta, "none | flip | ten-crop | all (each in turn)")->capture_default_str();
  cmd->add_option("--out", a->out, "folder for metrics-<tta>.json, confusion-<tta>.png and reliability-<tta>.png");
  cmd->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  cmd->add_option("--limit", a->limit, "evaluate a seeded subset of this many samples (0: all)");
  cmd->add_option("--batch-size", a->batch, "images per forward pass")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the metrics as JSON");
  cmd->add_option("--tta-crop", a->tta_crop,
                  "ten-crop: side of the five crops (and their mirrors) before resizing back; 40 as Khaireddin & Chen")
      ->capture_default_str();
  cmd->add_option("--precision", a->precision,
                  "CPU conv/dense products: fp32 | bf16 | auto (docs/precision.md)")->capture_default_str();
  cmd->add_flag("--ensemble-temperature", a->ensemble_temperature,
                "ensembles: fit the ensemble's own temperature on the half of --split its members' temperatures "
                "were fitted on, and report its calibration on the other half");
  cmd->add_option("--predictions", a->predictions,
                  "write face,label,predicted,top_probability per face (CSV; with several TTA modes, the last)");
  cmd->callback([a]() {
    Device dev = parse_device(a->device);
    runtime_set_precision(a->precision);
    if (!a->out.empty()) std::filesystem::create_directories(a->out);
    if (a->models.size() <= 1) {
      evaluate_one(*a, dev, resolve_option_path(a->models.empty() ? kDefaultModel : a->models[0], kDefaultModel));
      return;
    }
    std::vector<std::string> paths;
    for (const auto& m : a->models) paths.push_back(resolve_option_path(m, kDefaultModel));
    evaluate_ensemble(*a, dev, paths);
  });
}

}  // namespace emotune
