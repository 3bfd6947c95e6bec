// `emotune evaluate`: accuracy, top-2, per-class precision/recall/F1, macro-F1, balanced accuracy
// and the confusion matrix (table and PNG) of a model on a split, without and with test-time
// augmentation (flip, ten-crop).
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/train/evaluation.h"
#include "apps/train/plot.h"
#include "apps/train/trainer.h"
#include "engine/checkpoint.h"
#include "layers/model.h"

namespace emotune {

void add_evaluate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("evaluate", "measure a model on a FER-2013 split");
  struct Args {
    std::string model = kDefaultModel, data, split = "PublicTest", format = "auto";
    std::string labels = "fer2013", ferplus, tta = "all", out, device = "cpu";
    int64_t limit = 0;
    int batch = 256;
    bool json = false, skip_bad = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "checkpoint (safetensors)")->capture_default_str();
  cmd->add_option("--data", a->data, "FER-2013 csv (.gz/.xz), packed .u8.xz, or image-folder root")->required();
  cmd->add_option("--split", a->split, "split to evaluate")->capture_default_str();
  cmd->add_option("--format", a->format, "auto | csv | packed | folders")->capture_default_str();
  cmd->add_option("--labels", a->labels, "fer2013 | ferplus-majority | ferplus-distribution")->capture_default_str();
  cmd->add_option("--ferplus", a->ferplus, "fer2013new.csv for FER+ labels");
  cmd->add_option("--tta", a->tta, "none | flip | ten-crop | all (each in turn)")->capture_default_str();
  cmd->add_option("--out", a->out, "folder for metrics-<tta>.json and confusion-<tta>.png");
  cmd->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  cmd->add_option("--limit", a->limit, "evaluate a seeded subset of this many samples (0: all)");
  cmd->add_option("--batch-size", a->batch, "images per forward pass")->capture_default_str();
  cmd->add_flag("--json", a->json, "print the metrics as JSON");
  cmd->add_flag("--skip-bad", a->skip_bad, "skip malformed rows/images with a warning");
  cmd->callback([a]() {
    Device dev = parse_device(a->device);
    const std::string model_path = resolve_option_path(a->model, kDefaultModel);
    LoadedModel m = load_model(model_path, dev);
    TrainConfig c;
    c.data = a->data;
    c.format = a->format;
    c.labels = a->labels;
    c.ferplus = a->ferplus;
    c.classes = (int)m.info.classes.size();
    c.skip_bad = a->skip_bad;
    Dataset d = load_labelled_split(c, a->split, a->limit);
    std::vector<std::string> modes = a->tta == "all" ? std::vector<std::string>{"none", "flip", "ten-crop"}
                                                     : std::vector<std::string>{a->tta};
    if (!a->out.empty()) std::filesystem::create_directories(a->out);
    nlohmann::ordered_json all;
    for (const auto& mode : modes) {
      EvalOptions eo;
      eo.device = dev;
      eo.tta = tta_mode_from_name(mode);
      eo.batch_size = a->batch;
      eo.progress = true;
      EvalResult r = evaluate_network(*m.net, d, m.info.preprocess, c.classes, eo);
      std::string js = metrics_json(r.metrics, m.info.classes);
      all[mode] = nlohmann::json::parse(js);
      if (!a->json) {
        std::printf("== %s, %s split, test-time augmentation: %s\n%s\n", model_path.c_str(), a->split.c_str(),
                    mode.c_str(), format_metrics(r.metrics, m.info.classes).c_str());
      }
      if (!a->out.empty()) {
        write_file_atomic(a->out + "/metrics-" + mode + ".json", js + "\n");
        plot_confusion_matrix(a->out + "/confusion-" + mode + ".png", r.metrics.confusion, m.info.classes,
                              m.info.arch + " on " + a->split + ", TTA " + mode);
      }
    }
    if (a->json) std::printf("%s\n", all.dump(2).c_str());
  });
}

}  // namespace emotune
