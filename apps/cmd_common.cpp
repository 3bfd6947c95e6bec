#include "apps/commands.h"

#include "apps/pipeline/pipeline.h"
#include "apps/train/config.h"

namespace emotune {

void add_face_options(CLI::App* cmd, std::string& detector, std::string& align) {
  cmd->add_option("--detector", detector,
                  "face detector: hog (dlib), haar or lbp (OpenCV cascades); docs/faces.md")
      ->check(CLI::IsMember({"hog", "haar", "lbp"}))
      ->capture_default_str();
  cmd->add_option("--align", align,
                  "landmarks: level tilted faces with dlib's 68-point model; none: plain crops")
      ->check(CLI::IsMember({"landmarks", "none"}))
      ->capture_default_str();
}

void add_unsure_option(CLI::App* cmd, double& unsure_below) {
  cmd->add_option("--unsure-below", unsure_below,
                  "say \"unsure\" (and name the two likeliest moods) when the calibrated top probability "
                  "is below this; 0: never")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
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
