// `emotune evaluate`: accuracy, top-2, per-class precision/recall/F1, macro-F1, balanced accuracy
// and the confusion matrix (table and PNG) of a model on a split, without and with test-time
// augmentation (flip, ten-crop); and its calibration: ECE (15 bins) and NLL at T = 1 and at the
// model's temperature, with a reliability diagram (apps/train/calibration.h). When the
// temperature was fitted on half of this split, only the other half is evaluated, and it says so.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/train/calibration.h"
#include "apps/train/evaluation.h"
#include "apps/train/plot.h"
#include "apps/train/trainer.h"
#include "engine/checkpoint.h"
#include "engine/runtime.h"
#include "layers/model.h"

namespace emotune {

namespace {

// One row per face in the order evaluated: its index there, true class, predicted class (the first
// largest probability, as the metrics count it) and that probability (at T = 1). Written whole, then
// renamed into place.
void write_predictions_csv(const std::string& path, const EvalResult& r, int classes) {
  std::string out = "face,label,predicted,top_probability\n";
  char line[96];
  for (size_t i = 0; i < r.labels.size(); ++i) {
    const float* p = r.probs.data() + i * classes;
    int best = 0;
    for (int k = 1; k < classes; ++k)
      if (p[k] > p[best]) best = k;
    std::snprintf(line, sizeof line, "%zu,%d,%d,%.6f\n", i, r.labels[i], best, p[best]);
    out += line;
  }
  write_file_atomic(path, out);
}

}  // namespace

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "measure a model on a FER-2013 split");
  struct Args {
    std::string model = kDefaultModel, split = "PublicTest", tta = "all", out, device = "cpu", precision = "fp32";
    std::string predictions;  // CSV of each face's prediction (the last TTA mode's)
    TrainConfig c;  // the data options
    int64_t limit = 0;
    int batch = 256;
    int tta_crop = 44;
    bool json = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "checkpoint (safetensors)")->capture_default_str();
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
  cmd->add_option("--predictions", a->predictions,
                  "write face,label,predicted,top_probability per face (CSV; with several TTA modes, the last)");
  cmd->callback([a]() {
    Device dev = parse_device(a->device);
    runtime_set_precision(a->precision);
    const std::string model_path = resolve_option_path(a->model, kDefaultModel);
    LoadedModel m = load_model(model_path, dev);
    TrainConfig c = a->c;
    c.classes = (int)m.info.classes.size();
    std::string note;  // which faces, when the model's temperature was fitted on part of this split
    Dataset d = load_faces_for_report(c, a->split, a->limit, m.info.calibration, &note);
    if (!note.empty() && !a->json) std::printf("note: %s\n\n", note.c_str());
    std::vector<std::string> modes = a->tta == "all" ? std::vector<std::string>{"none", "flip", "ten-crop"}
                                                     : std::vector<std::string>{a->tta};
    if (!a->out.empty()) std::filesystem::create_directories(a->out);
    nlohmann::ordered_json all;
    for (const auto& mode : modes) {
      EvalOptions eo;
      eo.device = dev;
      eo.tta = tta_mode_from_name(mode);
      eo.tta_crop = a->tta_crop;
      eo.batch_size = a->batch;
      eo.progress = true;
      EvalResult r = evaluate_network(*m.net, d, m.info.preprocess, c.classes, eo);
      if (!a->predictions.empty()) write_predictions_csv(a->predictions, r, c.classes);
      const CalibrationComparison cal =
          compare_calibration(r, c.classes, m.info.temperature, !m.info.calibration.empty());
      auto js = nlohmann::ordered_json::parse(metrics_json(r.metrics, m.info.classes));
      js["calibration"] = nlohmann::ordered_json::parse(comparison_json(cal));
      if (!note.empty()) js["faces"] = note;
      all[mode] = js;
      if (!a->json) {
        std::printf("== %s, %s split, test-time augmentation: %s\n%s%s\n\n", model_path.c_str(), a->split.c_str(),
                    mode.c_str(), format_metrics(r.metrics, m.info.classes).c_str(), comparison_text(cal).c_str());
      }
      if (!a->out.empty()) {
        const std::string what = m.info.arch + " on " + a->split + (note.empty() ? "" : " (report half)") + ", TTA " + mode;
        write_file_atomic(a->out + "/metrics-" + mode + ".json", js.dump(2) + "\n");
        plot_confusion_matrix(a->out + "/confusion-" + mode + ".png", r.metrics.confusion, m.info.classes, what);
        const std::string after =
            cal.declined() ? "T = 1, NLL's T declined" : "T = " + temperature_string(cal.temperature);
        plot_reliability_diagram(a->out + "/reliability-" + mode + ".png", {{"T = 1", cal.before}, {after, cal.after}},
                                 what + ", " + std::to_string(d.size()) + " faces");
      }
    }
    if (a->json) std::printf("%s\n", all.dump(2).c_str());
  });
}

}  // namespace emotune
