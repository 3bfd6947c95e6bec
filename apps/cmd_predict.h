// The inference pipeline shared by `emotune predict`, `emotune recommend` and bench/inference.cpp:
//   decode (load_gray_image) -> detect (FaceDetector) -> square crop with margin -> resize to
//   preprocess.size (resize_gray) -> Preprocess::apply -> predict_probabilities (one batch).
// Each step is a separate function so the benchmark can time them one by one and the tests can
// check them without a model.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/vision/face.h"
#include "base/image.h"
#include "base/preprocess.h"
#include "layers/model.h"

namespace emotune {

// Default margin around a detected face, as a fraction of its side on each side: the Haar box
// runs from the eyebrows to the chin, FER-2013 faces include the forehead and the jaw line.
constexpr double kDefaultFaceMargin = 0.1;

struct FaceResult {
  FaceBox box;                       // the detected face (the whole image with --no-detect)
  FaceBox crop;                      // what was cut out and resized
  std::vector<float> probabilities;  // in model class order
};

struct ImageResult {
  std::string file;
  int width = 0, height = 0;
  std::vector<FaceResult> faces;  // empty: no face found (or error set)
  std::string error;              // non-empty when the file could not be read or decoded
};

// Image files named on the command line: files as given, directories expanded to the image files
// (by extension: jpg jpeg png bmp gif, the formats load_gray_image decodes) directly inside them, sorted
// by name. Throws emotune::Error for a path that does not exist or a folder with no image.
std::vector<std::string> expand_image_paths(const std::vector<std::string>& args);

// The face crops of an image: detector boxes with crop_box_with_margin, or, without a detector
// (--no-detect), the whole image as one face (box == crop == the full frame; it is resized to a
// square exactly as the image-folder dataset path does).
// listener=true: FaceDetector::detect_listener (recommend), else every face (predict).
std::vector<FaceResult> find_faces(const GrayImage& image, const FaceDetector* detector,
                                   double margin, bool listener = false);

// n faces -> n * size * size floats, [n, 1, size, size] row-major, ready for the network.
std::vector<float> prepare_face_inputs(const GrayImage& image, const std::vector<FaceResult>& faces,
                                       const Preprocess& preprocess);

// Wall-clock milliseconds of each stage, for --timing and the benchmark.
struct StageTimes {
  double load_cascade = 0, load_model = 0;            // once per pipeline
  double decode = 0, detect = 0, preprocess = 0, forward = 0;  // summed over analyze() calls
  std::string str() const;  // "decode 1.9 ms, detect 85.0 ms, ..."
};

// Detector + model, loaded once, applied to many images.
class EmotionPipeline {
 public:
  // detect=false: --no-detect; listener=true: look for the listener's face (recommend).
  // Throws emotune::Error for a bad checkpoint or cascade.
  EmotionPipeline(const std::string& model_path, Device device, bool detect, double margin,
                  bool listener = false);
  // Throws emotune::Error (naming the file) for a missing, non-image or truncated file.
  // Adds the stage times to *times when given.
  ImageResult analyze(const std::string& path, StageTimes* times = nullptr) const;
  const LoadedModel& model() const { return model_; }
  double load_cascade_ms() const { return load_cascade_ms_; }
  double load_model_ms() const { return load_model_ms_; }
  const std::string& model_path() const { return model_path_; }

 private:
  LoadedModel model_;
  std::string model_path_;
  std::unique_ptr<FaceDetector> detector_;
  double margin_;
  bool listener_ = false;
  double load_cascade_ms_ = 0, load_model_ms_ = 0;
};

// The JSON document `predict --json` prints (schema in docs/music.md):
// {"model": {"path", "arch", "classes"}, "images": [{"file", "width", "height", "status":
//  "ok"|"no_face"|"error", "error"?, "faces": [{"box": {x,y,w,h}, "crop": {x,y,w,h},
//  "top": {"class", "probability"}, "probabilities": {class: p, ...}}]}]}
nlohmann::ordered_json predict_json(const std::vector<ImageResult>& results,
                                    const std::string& model_path, const ModelInfo& info);
// One header row, then one row per face: file,face,x,y,w,h,top,<class...>
std::string predict_csv(const std::vector<ImageResult>& results, const ModelInfo& info);
std::string predict_table(const std::vector<ImageResult>& results, const ModelInfo& info);

nlohmann::ordered_json box_json(const FaceBox& b);
// Index of the class with the highest probability (the first on a tie).
size_t top_class(const std::vector<float>& probabilities);
// A default data path (models/..., data/music/...): as given when it exists relative to the
// working directory, else relative to the repository the running binary was built in
// (<repo>/build-*/bin/emotune), else as given (so the error names the path the user expects).
std::string resolve_default_path(const std::string& relative);

}  // namespace emotune
