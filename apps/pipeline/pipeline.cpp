#include "apps/pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "apps/vision/heatmap.h"
#include "base/error.h"
#include "engine/runtime.h"

namespace emotune {
namespace {

using Clock = std::chrono::steady_clock;
double ms_between(Clock::time_point a, Clock::time_point b) {
  return std::chrono::duration<double, std::milli>(b - a).count();
}

}  // namespace

std::string StageTimes::str() const {
  char b[256];
  std::snprintf(b, sizeof b,
                "load detector %.1f ms, load model %.1f ms, decode %.1f ms, detect %.1f ms, "
                "align %.1f ms, preprocess %.1f ms, forward %.1f ms",
                load_cascade, load_model, decode, detect, align, preprocess, forward);
  std::string s = b;
  if (explain > 0) {
    std::snprintf(b, sizeof b, ", explain %.1f ms", explain);
    s += b;
  }
  return s;
}

namespace {

std::vector<FaceResult> boxes_to_faces(const GrayImage& image, const std::vector<FaceBox>& boxes,
                                       double margin) {
  std::vector<FaceResult> faces;
  for (const FaceBox& b : boxes) {
    FaceResult f;
    f.box = b;
    f.crop = crop_box_with_margin(b, image.width, image.height, margin);
    faces.push_back(std::move(f));
  }
  return faces;
}

void align_faces(const GrayImage& image, const FaceAligner& aligner,
                 std::vector<FaceResult>& faces) {
  for (FaceResult& f : faces) {
    f.landmarks = aligner.locate(image, f.box);
    f.rotation = std::abs(f.landmarks->angle) >= kMinAlignAngle ? f.landmarks->angle : 0.0;
  }
}

}  // namespace

std::vector<FaceResult> find_faces(const GrayImage& image, const FaceDetector* detector,
                                   double margin, bool listener, const FaceAligner* aligner) {
  if (!detector) {
    FaceResult f;
    f.box = f.crop = FaceBox{0, 0, image.width, image.height};
    return {f};
  }
  auto faces = boxes_to_faces(
      image, listener ? detector->detect_listener(image) : detector->detect(image), margin);
  if (aligner) align_faces(image, *aligner, faces);
  return faces;
}

std::vector<float> prepare_face_inputs(const GrayImage& image, const std::vector<FaceResult>& faces,
                                       const Preprocess& preprocess) {
  const size_t plane = (size_t)preprocess.size * preprocess.size;
  std::vector<float> inputs(faces.size() * plane);
  for (size_t i = 0; i < faces.size(); ++i) {
    GrayImage face = rotated_face_image(image, faces[i].crop, faces[i].rotation, preprocess.size);
    preprocess.apply(face.pixels.data(), inputs.data() + i * plane);
  }
  return inputs;
}

bool is_unsure(const std::vector<float>& p, double unsure_below) {
  return !p.empty() && *std::max_element(p.begin(), p.end()) < unsure_below;
}

std::string mood_text(const std::vector<float>& p, const std::vector<std::string>& classes, bool unsure) {
  if (p.empty()) throw Error("mood_text: no probabilities");
  std::vector<size_t> order(p.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return p[a] > p[b]; });
  char b[160];
  if (!unsure || p.size() < 2)
    std::snprintf(b, sizeof b, "%s %.0f%%", classes.at(order[0]).c_str(), 100.0 * p[order[0]]);
  else
    std::snprintf(b, sizeof b, "unsure: %s %.0f%% / %s %.0f%%", classes.at(order[0]).c_str(), 100.0 * p[order[0]],
                  classes.at(order[1]).c_str(), 100.0 * p[order[1]]);
  return b;
}

void check_unsure_below(double v) {
  if (!(v >= 0 && v <= 1))
    throw Error("--unsure-below must be between 0 and 1 (a probability), got " + std::to_string(v));
}

void EmotionPipeline::set_unsure_below(double v) {
  check_unsure_below(v);
  unsure_below_ = v;
}

namespace {
HeatMap heat_of(const FaceResult& f) {
  if (!f.explanation) throw Error("this face was not explained (EmotionPipeline::explain)");
  return {f.explanation->height, f.explanation->width, f.explanation->map};
}
}  // namespace

std::vector<uint8_t> explanation_png(const FaceResult& f, const std::string& caption, const std::string& note) {
  return encode_explanation_png(f.explained_face, heat_of(f), caption, note);
}

void write_explanation_png(const std::string& path, const FaceResult& f, const std::string& caption,
                           const std::string& note) {
  write_explanation_png(path, f.explained_face, heat_of(f), caption, note);
}

void draw_explanation(uint8_t* bgr, int width, int height, size_t row_bytes, const FaceResult& f) {
  blend_heat(bgr, width, height, row_bytes, f.crop, heat_of(f));
}

void enter_serve_worker_thread() { runtime_apply_thread_rule(FrontEnd::serve); }

size_t top_class(const std::vector<float>& p) {
  return (size_t)(std::max_element(p.begin(), p.end()) - p.begin());
}

EmotionPipeline::EmotionPipeline(const std::string& model_path, Device device, bool detect,
                                 double margin, bool listener, DetectorKind detector,
                                 AlignKind align,
                                 std::optional<FaceDetectorOptions> detector_options)
    : model_path_(model_path), margin_(margin), listener_(listener) {
  if (!(margin >= 0) || margin > 2)
    throw Error("--margin must be between 0 and 2 (a fraction of the face side), got " +
                std::to_string(margin));
  std::error_code ec;
  if (!std::filesystem::exists(model_path, ec))
    throw Error(model_path + ": model file not found (train one with `emotune train` or pass "
                             "--model PATH)");
  auto t0 = Clock::now();
  if (detect)
    detector_ = std::make_unique<FaceDetector>(
        detector, detector_options.value_or(default_detector_options(detector)));
  if (detect && align == AlignKind::landmarks) aligner_ = std::make_unique<FaceAligner>();
  auto t1 = Clock::now();
  model_ = load_model(model_path, device);
  load_cascade_ms_ = ms_between(t0, t1);
  load_model_ms_ = ms_between(t1, Clock::now());
  if (model_.info.classes.empty()) throw Error(model_path + ": checkpoint lists no classes");
}

std::vector<FaceResult> EmotionPipeline::detect(const GrayImage& image, StageTimes* times,
                                                FaceSearch search) const {
  auto t0 = Clock::now();
  const bool listener = search == FaceSearch::configured ? listener_ : search == FaceSearch::listener;
  auto faces = find_faces(image, detector_.get(), margin_, listener);
  auto t1 = Clock::now();
  if (aligner_) align_faces(image, *aligner_, faces);
  if (times) {
    times->detect += ms_between(t0, t1);
    times->align += ms_between(t1, Clock::now());
  }
  return faces;
}

std::vector<FaceResult> EmotionPipeline::faces_at(const GrayImage& image, const std::vector<FaceBox>& boxes,
                                                  StageTimes* times) const {
  auto t0 = Clock::now();
  auto faces = boxes_to_faces(image, boxes, margin_);
  if (aligner_) align_faces(image, *aligner_, faces);
  if (times) times->align += ms_between(t0, Clock::now());
  return faces;
}

void EmotionPipeline::classify(const GrayImage& image, std::vector<FaceResult>& faces,
                               StageTimes* times) const {
  if (faces.empty()) return;
  auto t0 = Clock::now();
  std::vector<float> inputs = prepare_face_inputs(image, faces, model_.info.preprocess);
  auto t1 = Clock::now();
  auto probs = predict_probabilities(model_, inputs.data(), (int)faces.size());
  if (times) {
    times->preprocess += ms_between(t0, t1);
    times->forward += ms_between(t1, Clock::now());
  }
  if (probs.size() != faces.size())
    throw Error("model returned " + std::to_string(probs.size()) + " rows for " +
                std::to_string(faces.size()) + " faces");
  for (size_t i = 0; i < faces.size(); ++i) {
    if (probs[i].size() != model_.info.classes.size())
      throw Error("model returned " + std::to_string(probs[i].size()) + " probabilities for " +
                  std::to_string(model_.info.classes.size()) + " classes");
    faces[i].probabilities = std::move(probs[i]);
    faces[i].unsure = is_unsure(faces[i].probabilities, unsure_below_);
  }
}

void EmotionPipeline::explain(const GrayImage& image, std::vector<FaceResult>& faces, int target,
                              StageTimes* times, bool face_pictures) const {
  if (faces.empty()) return;
  auto t0 = Clock::now();
  const size_t plane = (size_t)model_.info.preprocess.size * model_.info.preprocess.size;
  std::vector<float> inputs = prepare_face_inputs(image, faces, model_.info.preprocess);
  for (size_t i = 0; i < faces.size(); ++i) {
    faces[i].explanation = grad_cam(model_, inputs.data() + i * plane, target);
    if (face_pictures)
      faces[i].explained_face = rotated_face_image(image, faces[i].crop, faces[i].rotation, kExplainSide);
  }
  if (times) times->explain += ms_between(t0, Clock::now());
}

ImageResult EmotionPipeline::analyze_image(const GrayImage& image, const std::string& name,
                                           StageTimes* times, const ExplainOptions& ex,
                                           FaceSearch search) const {
  ImageResult r;
  r.file = name;
  r.width = image.width;
  r.height = image.height;
  r.faces = detect(image, times, search);
  classify(image, r.faces, times);
  if (ex.on) explain(image, r.faces, ex.target, times);
  return r;
}

ImageResult EmotionPipeline::analyze(const std::string& path, StageTimes* times,
                                     const ExplainOptions& ex) const {
  auto t0 = Clock::now();
  GrayImage image = load_gray_image(path);
  if (times) times->decode += ms_between(t0, Clock::now());
  return analyze_image(image, path, times, ex);
}

}  // namespace emotune
