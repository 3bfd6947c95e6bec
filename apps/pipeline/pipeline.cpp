#include "apps/pipeline/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "base/error.h"

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
                "load cascade %.1f ms, load model %.1f ms, decode %.1f ms, detect %.1f ms, "
                "preprocess %.1f ms, forward %.1f ms",
                load_cascade, load_model, decode, detect, preprocess, forward);
  return b;
}

std::vector<FaceResult> find_faces(const GrayImage& image, const FaceDetector* detector,
                                   double margin, bool listener) {
  std::vector<FaceResult> faces;
  if (!detector) {
    FaceBox all{0, 0, image.width, image.height};
    faces.push_back({all, all, {}});
    return faces;
  }
  for (const FaceBox& b : listener ? detector->detect_listener(image) : detector->detect(image))
    faces.push_back({b, crop_box_with_margin(b, image.width, image.height, margin), {}});
  return faces;
}

std::vector<float> prepare_face_inputs(const GrayImage& image, const std::vector<FaceResult>& faces,
                                       const Preprocess& preprocess) {
  const size_t plane = (size_t)preprocess.size * preprocess.size;
  std::vector<float> inputs(faces.size() * plane);
  for (size_t i = 0; i < faces.size(); ++i) {
    GrayImage face = face_image(image, faces[i].crop, preprocess.size);
    preprocess.apply(face.pixels.data(), inputs.data() + i * plane);
  }
  return inputs;
}

size_t top_class(const std::vector<float>& p) {
  return (size_t)(std::max_element(p.begin(), p.end()) - p.begin());
}

EmotionPipeline::EmotionPipeline(const std::string& model_path, Device device, bool detect,
                                 double margin, bool listener)
    : model_path_(model_path), margin_(margin), listener_(listener) {
  if (!(margin >= 0) || margin > 2)
    throw Error("--margin must be between 0 and 2 (a fraction of the face side), got " +
                std::to_string(margin));
  std::error_code ec;
  if (!std::filesystem::exists(model_path, ec))
    throw Error(model_path + ": model file not found (train one with `emotune train` or pass "
                             "--model PATH)");
  auto t0 = Clock::now();
  if (detect) detector_ = std::make_unique<FaceDetector>();
  auto t1 = Clock::now();
  model_ = load_model(model_path, device);
  load_cascade_ms_ = ms_between(t0, t1);
  load_model_ms_ = ms_between(t1, Clock::now());
  if (model_.info.classes.empty()) throw Error(model_path + ": checkpoint lists no classes");
}

std::vector<FaceResult> EmotionPipeline::detect(const GrayImage& image) const {
  return find_faces(image, detector_.get(), margin_, listener_);
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
  }
}

ImageResult EmotionPipeline::analyze_image(const GrayImage& image, const std::string& name,
                                           StageTimes* times) const {
  ImageResult r;
  r.file = name;
  r.width = image.width;
  r.height = image.height;
  auto t0 = Clock::now();
  r.faces = detect(image);
  if (times) times->detect += ms_between(t0, Clock::now());
  classify(image, r.faces, times);
  return r;
}

ImageResult EmotionPipeline::analyze(const std::string& path, StageTimes* times) const {
  auto t0 = Clock::now();
  GrayImage image = load_gray_image(path);
  if (times) times->decode += ms_between(t0, Clock::now());
  return analyze_image(image, path, times);
}

}  // namespace emotune
