// The inference pipeline: one implementation of "image in, faces and emotion probabilities out",
// shared by `emotune predict`, `emotune recommend`, bench/inference.cpp and the video and web
// commands. Its stages, each a function so the benchmark can time them and the tests can check
// them without a model:
//   decode (load_gray_image) -> detect (FaceDetector) -> landmarks (FaceAligner, optional)
//   -> square crop with margin, rotated level when the eyes tilt >= kMinAlignAngle
//   -> resize to preprocess.size (resize_gray) -> Preprocess::apply -> one batched forward pass
//   -> softmax probabilities in the model's class order.
// The commands only parse flags and format what this returns (apps/cmd_*.cpp).
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <optional>

#include "apps/vision/align.h"
#include "apps/vision/face.h"
#include "base/image.h"
#include "base/preprocess.h"
#include "layers/gradcam.h"
#include "layers/model.h"

namespace emotune {

// Default margin around a detected face, as a fraction of its side on each side: the Haar box
// runs from the eyebrows to the chin, FER-2013 faces include the forehead and the jaw line.
constexpr double kDefaultFaceMargin = 0.1;

// Below this top probability a face's mood is reported as unsure ("unsure: sad 38% / neutral
// 34%") instead of one name. The probabilities are calibrated (temperature scaling, stored with
// the model: docs/calibration.md), so a top probability under 0.5 means the named mood would be
// wrong more often than right. --unsure-below on predict, recommend, watch and serve; 0 turns it off.
constexpr double kDefaultUnsureBelow = 0.5;
// True when the largest of `probabilities` is below `unsure_below`.
bool is_unsure(const std::vector<float>& probabilities, double unsure_below);
// A face's mood in words: "happy 96%", or when unsure the two likeliest moods, "unsure: sad 38% /
// neutral 34%". Shared by the terminal, the recommendation and the video.
std::string mood_text(const std::vector<float>& probabilities, const std::vector<std::string>& classes, bool unsure);
// Throws emotune::Error unless 0 <= v <= 1 (the flag's check).
void check_unsure_below(double v);

struct FaceResult {
  FaceBox box;                       // the detected face (the whole image with --no-detect)
  FaceBox crop;                      // what was cut out (before rotation) and resized
  std::vector<float> probabilities;  // in model class order
  std::optional<FaceLandmarks> landmarks;  // with alignment: the 68 points, eyes and tilt
  double rotation = 0;               // degrees the crop was rotated by (0: a plain square crop)
  bool unsure = false;               // top probability below the pipeline's unsure_below
  std::optional<GradCam> explanation;  // with EmotionPipeline::explain: where the network looked
  GrayImage explained_face;  // with explain: the crop as the network saw it, kExplainSide square
  std::string explanation_file;  // where a front end wrote its picture (predict --explain), or ""
};

// The side of the face picture an explanation is drawn on (apps/vision/heatmap.h).
constexpr int kExplainSide = 240;

// Which faces a pipeline looks for: what it was made with (listener or not), every face
// (predict), or the listener's (recommend: FaceDetector::detect_listener).
enum class FaceSearch { configured, every, listener };

// What analyze() explains: nothing, or every face for its predicted class (target -1) or one class.
struct ExplainOptions {
  bool on = false;
  int target = -1;
};

struct ImageResult {
  std::string file;
  int width = 0, height = 0;
  std::vector<FaceResult> faces;  // empty: no face found (or error set)
  std::string error;              // non-empty when the file could not be read or decoded
};

// The face crops of an image: detector boxes with crop_box_with_margin, or, without a detector
// (--no-detect), the whole image as one face (box == crop == the full frame; it is resized to a
// square exactly as the image-folder dataset path does).
// listener=true: FaceDetector::detect_listener (recommend), else every face (predict).
// With an aligner each face gets its landmarks, and faces tilted by >= kMinAlignAngle degrees
// rotation = the tilt (the crop is rotated level about its centre).
std::vector<FaceResult> find_faces(const GrayImage& image, const FaceDetector* detector,
                                   double margin, bool listener = false,
                                   const FaceAligner* aligner = nullptr);

// n faces -> n * size * size floats, [n, 1, size, size] row-major, ready for the network.
std::vector<float> prepare_face_inputs(const GrayImage& image, const std::vector<FaceResult>& faces,
                                       const Preprocess& preprocess);

// Pictures of an explained face (EmotionPipeline::explain; drawn by apps/vision/heatmap.h), so
// that the front ends reach the drawing through the pipeline: the face with its map, a colour
// bar, `caption` and `note`, as PNG bytes or a file; and the map blended over the face's crop in
// an 8-bit BGR frame (watch). Each throws when the face was not explained.
std::vector<uint8_t> explanation_png(const FaceResult& face, const std::string& caption, const std::string& note);
void write_explanation_png(const std::string& path, const FaceResult& face, const std::string& caption,
                           const std::string& note);
void draw_explanation(uint8_t* bgr, int width, int height, size_t row_bytes, const FaceResult& face);

// Index of the class with the highest probability (the first on a tie).
size_t top_class(const std::vector<float>& probabilities);

// Wall-clock milliseconds of each stage, for --timing and the benchmark.
struct StageTimes {
  double load_cascade = 0, load_model = 0;            // once per pipeline (cascade: +landmarks)
  double decode = 0, detect = 0, align = 0, preprocess = 0, forward = 0;  // summed over calls
  double explain = 0;  // Grad-CAM (one forward and one backward per face), when asked for
  std::string str() const;  // "decode 1.9 ms, detect 85.0 ms, ..."
};

// Detector + model, loaded once, applied to many images. const after construction: one
// pipeline may serve several threads as long as the model's forward pass does (CPU: yes).
// A serve worker calls this on its own thread before its first request: serve's threading rule
// (engine/runtime.h: one OpenMP thread per request unless the user set OMP_NUM_THREADS), which
// OpenMP keeps per thread. serve reaches the engine only through the pipeline.
void enter_serve_worker_thread();

class EmotionPipeline {
 public:
  // detect=false: --no-detect; listener=true: look for the listener's face (recommend).
  // detector: --detector; align: --align (ignored with detect=false: a crop is used as it is).
  // Throws emotune::Error for a bad margin, a missing or bad checkpoint, a missing cascade or a
  // missing landmark model.
  EmotionPipeline(const std::string& model_path, Device device, bool detect, double margin,
                  bool listener = false, DetectorKind detector = kDefaultDetector,
                  AlignKind align = kDefaultAlign,
                  std::optional<FaceDetectorOptions> detector_options = std::nullopt);
  // Video: detector_options with min_face_fraction 0.3 (faces >= 30% of the frame height) keeps
  // HOG near 11-14 ms per 640x480 frame; the default (0.1) costs ~100 ms (docs/benchmarks.md).

  // decode + analyze_image. Throws emotune::Error (naming the file) for a missing, non-image or
  // truncated file. Adds the stage times to *times when given.
  ImageResult analyze(const std::string& path, StageTimes* times = nullptr,
                      const ExplainOptions& explain = {}) const;
  // Detect and classify the faces of an image already decoded (a video frame, an upload), and
  // explain them when asked.
  ImageResult analyze_image(const GrayImage& image, const std::string& name,
                            StageTimes* times = nullptr, const ExplainOptions& explain = {},
                            FaceSearch search = FaceSearch::configured) const;
  // The stages on their own, for callers that bring their own faces (a tracker between
  // detections): find the faces; classify given faces in one batch (fills .probabilities).
  // detect() includes the landmarks and rotation when the pipeline aligns; times->detect and
  // times->align get the two stages when given.
  // `search` overrides the face search the pipeline was made with (serve answers predict, every
  // face, and recommend, the listener, from one pipeline per worker).
  std::vector<FaceResult> detect(const GrayImage& image, StageTimes* times = nullptr,
                                 FaceSearch search = FaceSearch::configured) const;
  // Faces at boxes found elsewhere (a tracker's, between detections): the crops with the
  // pipeline's margin, with landmarks and rotation when the pipeline aligns, as detect() gives.
  std::vector<FaceResult> faces_at(const GrayImage& image, const std::vector<FaceBox>& boxes,
                                   StageTimes* times = nullptr) const;
  void classify(const GrayImage& image, std::vector<FaceResult>& faces,
                StageTimes* times = nullptr) const;
  // Grad-CAM of each face (layers/gradcam.h) for `target`, or for its predicted class when
  // target < 0: fills faces[i].explanation. One forward and one backward per face on the training
  // graph; it uses the network's gradient flags, so one call at a time per pipeline (the rule of
  // serve's workers: one pipeline each). Fills faces[i].explained_face too (the picture that
  // explanation_png / write_explanation_png draw on) unless face_pictures is false: watch draws the
  // map onto its own frame and needs no picture. Throws on a target out of range.
  void explain(const GrayImage& image, std::vector<FaceResult>& faces, int target = -1,
               StageTimes* times = nullptr, bool face_pictures = true) const;

  // The threshold classify() marks faces unsure below (kDefaultUnsureBelow); set it before the
  // pipeline is shared. Throws for a value outside [0, 1].
  void set_unsure_below(double v);
  double unsure_below() const { return unsure_below_; }

  const LoadedModel& model() const { return model_; }
  double margin() const { return margin_; }
  const FaceDetector* detector() const { return detector_.get(); }
  const FaceAligner* aligner() const { return aligner_.get(); }
  double load_cascade_ms() const { return load_cascade_ms_; }
  double load_model_ms() const { return load_model_ms_; }
  const std::string& model_path() const { return model_path_; }

 private:
  LoadedModel model_;
  std::string model_path_;
  std::unique_ptr<FaceDetector> detector_;
  std::unique_ptr<FaceAligner> aligner_;
  double margin_;
  double unsure_below_ = kDefaultUnsureBelow;
  bool listener_ = false;
  double load_cascade_ms_ = 0, load_model_ms_ = 0;
};

}  // namespace emotune
