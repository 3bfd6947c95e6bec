// `emotune calibrate --model M --data FER2013 --split PublicTest --out M2.safetensors [--seed 1]`:
// fits the temperature of an existing model on one seeded, stratified half of a split, reports
// ECE (15 bins) and NLL before and after on the other half, and writes a copy of the model with
// the metadata "temperature" and "calibration" (apps/train/calibration.h; docs/calibration.md).
// predict, recommend, watch and serve then apply it; evaluate reports on the other half only.
// With --val-fraction F the faces are the held-out F of the split that `emotune train
// --val-fraction F` validated on (the same --seed carves it, as the trainer's seed did), so a
// model trained with honest selection is re-calibrated on its own slice and never on a split it
// is reported on.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/train/calibration.h"
#include "apps/train/holdout.h"
#include "apps/train/trainer.h"
#include "base/error.h"
#include "layers/model.h"

namespace emotune {

void add_calibrate_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("calibrate", "fit a model's temperature (calibrated probabilities)");
  struct Args {
    std::string model = kDefaultModel, split = "PublicTest", out, device = "cpu";
    TrainConfig c;  // the data options
    uint64_t seed = 1;
    double val_fraction = 0;
    int fit_half = 0, batch = 256;
    bool json = false, keep_worse = false;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--model", a->model, "checkpoint (safetensors)")->capture_default_str();
  add_data_options(cmd, a->c);
  cmd->add_option("--split", a->split, "split whose halves fit and report")->capture_default_str();
  cmd->add_option("--out", a->out, "the calibrated copy of the model (may be --model itself)")->required();
  cmd->add_option("--seed", a->seed, "seed of the stratified halves (and of the --val-fraction slice)")
      ->capture_default_str();
  cmd->add_option("--val-fraction", a->val_fraction,
                  "calibrate on the held-out fraction of --split that `train --val-fraction` carved with this seed")
      ->check(CLI::Range(0.0, 0.5));
  cmd->add_option("--fit-half", a->fit_half, "the half to fit on (0 or 1); the other reports")
      ->check(CLI::IsMember({0, 1}))
      ->capture_default_str();
  cmd->add_option("--device", a->device, "cpu | cuda")->capture_default_str();
  cmd->add_option("--batch-size", a->batch, "images per forward pass")->capture_default_str();
  cmd->add_flag("--keep-worse-ece", a->keep_worse,
                "apply the NLL's temperature even where it makes the fit half's top-label ECE worse");
  cmd->add_flag("--json", a->json, "print the calibration record as JSON");
  cmd->callback([a]() {
    const std::string model_path = resolve_option_path(a->model, kDefaultModel);
    CalibrationSetup s;
    s.split = a->split;
    s.labels = a->c.labels;
    s.data = a->c.data;
    s.seed = a->seed;
    s.fit_half = a->fit_half;
    s.always = a->keep_worse;
    s.eval.device = parse_device(a->device);
    s.eval.batch_size = a->batch;
    s.eval.progress = true;
    const LoadedModel m = load_model(model_path, s.eval.device);
    TrainConfig c = a->c;
    c.classes = (int)m.info.classes.size();
    Dataset faces = load_labelled_split(c, a->split, 0);
    if (a->val_fraction > 0) {  // as the trainer carves its validation slice (apps/train/trainer.cpp load_data)
      const Holdout h = stratified_holdout(faces.labels, a->val_fraction, a->seed);
      if (h.held_out.size() < 2)
        throw Error("--val-fraction " + std::to_string(a->val_fraction) + " holds out " +
                    std::to_string(h.held_out.size()) + " face(s) of " + a->split + ": too few for two halves");
      faces = faces.subset(h.held_out);
      s.holdout = a->val_fraction;
    }
    const CalibrationRecord r = calibrate_model(m, faces, s);
    write_calibrated_model(model_path, a->out, r);
    if (a->json) {
      std::printf("%s\n", nlohmann::json::parse(r.to_json()).dump(2).c_str());
    } else {
      std::printf("%s: %s\nwrote %s\n", model_path.c_str(), calibration_summary(r).c_str(), a->out.c_str());
    }
  });
}

}  // namespace emotune
