// `emotune predict IMAGE... [--model PATH] [--json|--csv] [--no-detect] [--device cpu|cuda]
//  [--margin F] [--timing]`: every face in every image, its box and all class probabilities.
//
// Exit status: 0 when every image had at least one face; 2 when some image had none (the others
// are still reported; each face-less image gets "no face found in FILE" on stderr and status
// "no_face" in JSON); 1 when some file could not be read or decoded (reported, the rest still
// processed) or the command itself failed (bad model, bad option). Never a guess for a face-less
// image: without a face there is nothing to classify.
#include "apps/cmd_predict.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "base/error.h"

namespace emotune {
namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = (char)std::tolower((unsigned char)c);
  // The formats load_gray_image decodes (base/image.cpp compiles only these).
  for (const char* ok : {".jpg", ".jpeg", ".png", ".bmp", ".gif"})
    if (e == ok) return true;
  return false;
}

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

std::vector<std::string> expand_image_paths(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : fs::directory_iterator(a, ec))
        if (entry.is_regular_file(ec) && has_image_extension(entry.path()))
          files.push_back(entry.path().string());
      if (ec) throw Error(a + ": cannot list folder (" + ec.message() + ")");
      if (files.empty())
        throw Error(a + ": folder holds no image files (.jpg .jpeg .png .bmp .gif)");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::exists(a, ec)) {
      out.push_back(a);
    } else {
      throw Error(a + ": no such file or folder");
    }
  }
  return out;
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

EmotionPipeline::EmotionPipeline(const std::string& model_path, Device device, bool detect,
                                 double margin, bool listener)
    : model_path_(model_path), margin_(margin), listener_(listener) {
  if (!(margin >= 0) || margin > 2)
    throw Error("--margin must be between 0 and 2 (a fraction of the face side), got " +
                std::to_string(margin));
  std::error_code ec;
  if (!fs::exists(model_path, ec))
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

ImageResult EmotionPipeline::analyze(const std::string& path, StageTimes* times) const {
  StageTimes local;
  StageTimes& t = times ? *times : local;
  ImageResult r;
  r.file = path;
  auto t0 = Clock::now();
  GrayImage image = load_gray_image(path);
  auto t1 = Clock::now();
  t.decode += ms_between(t0, t1);
  r.width = image.width;
  r.height = image.height;
  r.faces = find_faces(image, detector_.get(), margin_, listener_);
  auto t2 = Clock::now();
  t.detect += ms_between(t1, t2);
  if (r.faces.empty()) return r;
  std::vector<float> inputs = prepare_face_inputs(image, r.faces, model_.info.preprocess);
  auto t3 = Clock::now();
  t.preprocess += ms_between(t2, t3);
  auto probs = predict_probabilities(model_, inputs.data(), (int)r.faces.size());
  t.forward += ms_between(t3, Clock::now());
  if (probs.size() != r.faces.size())
    throw Error("model returned " + std::to_string(probs.size()) + " rows for " +
                std::to_string(r.faces.size()) + " faces");
  for (size_t i = 0; i < r.faces.size(); ++i) {
    if (probs[i].size() != model_.info.classes.size())
      throw Error("model returned " + std::to_string(probs[i].size()) + " probabilities for " +
                  std::to_string(model_.info.classes.size()) + " classes");
    r.faces[i].probabilities = std::move(probs[i]);
  }
  return r;
}

std::string resolve_default_path(const std::string& relative) {
  std::error_code ec;
  if (fs::exists(relative, ec)) return relative;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // <repo>/build-x/bin/emotune or <repo>/build-x/tests/... : look up to three levels up.
    fs::path dir = exe.parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
      fs::path candidate = dir / relative;
      if (fs::exists(candidate, ec)) return candidate.string();
      if (dir == dir.parent_path()) break;
    }
  }
  return relative;
}

void add_predict_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> images;
    std::string model = kDefaultModel;
    bool json = false, csv = false, no_detect = false;
    std::string device = "cpu";
    double margin = kDefaultFaceMargin;
    bool timing = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "predict", "Find every face in IMAGE(s) and print the probability of each emotion");
  cmd->add_option("images", opt->images, "image files or folders (every image in a folder, sorted)")
      ->required();
  cmd->add_option("--model", opt->model, "checkpoint (safetensors)")->capture_default_str();
  auto* json = cmd->add_flag("--json", opt->json, "print JSON (schema: docs/music.md)");
  cmd->add_flag("--csv", opt->csv, "print CSV, one row per face")->excludes(json);
  cmd->add_flag("--no-detect", opt->no_detect,
                "the whole image is the face (for images that are already face crops)");
  cmd->add_option("--device", opt->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--margin", opt->margin, "margin around a detected face, fraction of its side")
      ->capture_default_str();
  cmd->add_flag("--timing", opt->timing, "print the time of each stage to stderr");

  cmd->callback([opt]() {
    std::string model_path =
        opt->model == kDefaultModel ? resolve_default_path(opt->model) : opt->model;
    std::vector<std::string> files = expand_image_paths(opt->images);
    EmotionPipeline pipeline(model_path, parse_device(opt->device), !opt->no_detect, opt->margin);

    StageTimes times;
    times.load_cascade = pipeline.load_cascade_ms();
    times.load_model = pipeline.load_model_ms();
    std::vector<ImageResult> results;
    bool any_error = false, any_no_face = false;
    for (const std::string& f : files) {
      try {
        results.push_back(pipeline.analyze(f, &times));
      } catch (const Error& e) {
        ImageResult r;
        r.file = f;
        r.error = e.what();
        results.push_back(r);
      }
      const ImageResult& r = results.back();
      if (!r.error.empty()) {
        any_error = true;
        std::cerr << "emotune predict: error: " << r.error << "\n";
      } else if (r.faces.empty()) {
        any_no_face = true;
        std::cerr << "emotune predict: no face found in " << r.file
                  << " (use --no-detect if the image is already a face crop)\n";
      }
    }
    const ModelInfo& info = pipeline.model().info;
    if (opt->json)
      std::cout << predict_json(results, model_path, info).dump(2) << "\n";
    else if (opt->csv)
      std::cout << predict_csv(results, info);
    else
      std::cout << predict_table(results, info);
    std::cout.flush();
    if (opt->timing)
      std::cerr << "timing (" << files.size() << (files.size() == 1 ? " image" : " images")
                << "): " << times.str() << "\n";
    if (any_error)
      cli_exit_code() = 1;
    else if (any_no_face)
      cli_exit_code() = 2;
  });
}

}  // namespace emotune
