#include "apps/commands.h"

#include "apps/train/config.h"

namespace emotune {

void add_face_options(CLI::App* cmd, FaceOptions& o, bool with_device) {
  cmd->add_option("--model", o.model, "checkpoint (safetensors)")->capture_default_str();
  if (with_device)
    cmd->add_option("--device", o.device, "cpu or cuda")->check(CLI::IsMember({"cpu", "cuda"}))->capture_default_str();
  cmd->add_option("--margin", o.margin, "margin around a detected face, fraction of its side")->capture_default_str();
  cmd->add_option("--detector", o.detector, "face detector: hog (dlib), haar or lbp (OpenCV cascades); docs/faces.md")
      ->check(CLI::IsMember({"hog", "haar", "lbp"}))
      ->capture_default_str();
  cmd->add_option("--align", o.align, "landmarks: level tilted faces with dlib's 68-point model; none: plain crops")
      ->check(CLI::IsMember({"landmarks", "none"}))
      ->capture_default_str();
  cmd->add_option("--unsure-below", o.unsure_below,
                  "say \"unsure\" (and name the two likeliest moods) when the calibrated top probability "
                  "is below this; 0: never")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
}

std::unique_ptr<EmotionPipeline> make_pipeline(const FaceOptions& o, bool detect, bool listener) {
  auto p = std::make_unique<EmotionPipeline>(resolve_option_path(o.model, kDefaultModel), parse_device(o.device),
                                             detect, o.margin, listener, parse_detector(o.detector),
                                             parse_align(o.align));
  p->set_unsure_below(o.unsure_below);
  return p;
}

void add_data_options(CLI::App* cmd, TrainConfig& data) {
  cmd->add_option("--data", data.data, "FER-2013 csv (.gz/.xz), packed .u8.xz, or image-folder root")->required();
  cmd->add_option("--format", data.format, "auto | csv | packed | folders")->capture_default_str();
  cmd->add_option("--labels", data.labels, "fer2013 | ferplus-majority | ferplus-distribution")->capture_default_str();
  cmd->add_option("--ferplus", data.ferplus, "fer2013new.csv for FER+ labels");
  cmd->add_flag("--skip-bad", data.skip_bad, "skip malformed rows/images with a warning");
}

int& cli_exit_code() {
  static int code = 0;
  return code;
}

}  // namespace emotune
