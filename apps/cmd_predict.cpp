// `emotune predict IMAGE... [--model PATH] [--json|--csv] [--no-detect] [--device cpu|cuda]
//  [--margin F] [--timing] [--explain DIR] [--explain-json] [--explain-class NAME]
//  [--detector hog|haar|lbp] [--align landmarks|none]`: every face in every image, its box and all class probabilities.
//
// Exit status: 0 when every image had at least one face; 2 when some image had none (the others
// are still reported; each face-less image gets "no face found in FILE" on stderr and status
// "no_face" in JSON); 1 when some file could not be read or decoded (reported, the rest still
// processed) or the command itself failed (bad model, bad option). Never a guess for a face-less
// image: without a face there is nothing to classify.
#include <filesystem>
#include <iostream>
#include <set>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/report/predict.h"
#include "base/error.h"

namespace emotune {

namespace {

// The class index named `name`, or -1 for an empty name (the predicted class).
int class_index(const ModelInfo& info, const std::string& name) {
  if (name.empty()) return -1;
  for (size_t c = 0; c < info.classes.size(); ++c)
    if (info.classes[c] == name) return (int)c;
  std::string known;
  for (const auto& c : info.classes) known += (known.empty() ? "" : ", ") + c;
  throw Error("--explain-class " + name + ": the model has no such class (" + known + ")");
}

// Writes one picture per explained face into `dir` as <image stem>-face<k>.png (a stem seen
// before gets -2, -3 ...), and records each file name in the face.
void write_explanations(const std::string& dir, std::vector<ImageResult>& results, const ModelInfo& info) {
  std::filesystem::create_directories(dir);
  std::set<std::string> stems;
  for (ImageResult& r : results) {
    std::string stem = std::filesystem::path(r.file).stem().string();
    for (int k = 2; !stems.insert(stem).second; ++k)
      stem = std::filesystem::path(r.file).stem().string() + "-" + std::to_string(k);
    for (size_t i = 0; i < r.faces.size(); ++i) {
      FaceResult& f = r.faces[i];
      if (!f.explanation) continue;
      const std::string path = (std::filesystem::path(dir) / (stem + "-face" + std::to_string(i + 1) + ".png")).string();
      write_explanation_png(path, f, explanation_caption(f, info), explanation_note(f));
      f.explanation_file = path;
    }
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  struct Options {
    std::vector<std::string> images;
    FaceOptions faces;
    bool json = false, csv = false, no_detect = false, timing = false;
    std::string explain_dir, explain_class;
    bool explain_json = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "predict", "Find every face in IMAGE(s) and print the probability of each emotion");
  cmd->add_option("images", opt->images, "image files or folders (every image in a folder, sorted)")
      ->required();
  add_face_options(cmd, opt->faces);
  auto* json = cmd->add_flag("--json", opt->json, "print JSON (schema: docs/music.md)");
  cmd->add_flag("--csv", opt->csv, "print CSV, one row per face")->excludes(json);
  cmd->add_flag("--no-detect", opt->no_detect,
                "the whole image is the face (for images that are already face crops)");
  cmd->add_flag("--timing", opt->timing, "print the time of each stage to stderr");
  cmd->add_option("--explain", opt->explain_dir,
                  "write a Grad-CAM picture of every face into this folder (docs/explain.md)");
  cmd->add_flag("--explain-json", opt->explain_json,
                "explain every face and put the coarse Grad-CAM map in the JSON (with --json)");
  cmd->add_option("--explain-class", opt->explain_class,
                  "explain this class instead of the predicted one (with --explain / --explain-json)");

  cmd->callback([opt]() {
    std::vector<std::string> files = expand_image_paths(opt->images);
    const std::unique_ptr<EmotionPipeline> made = make_pipeline(opt->faces, !opt->no_detect, /*listener=*/false);
    const EmotionPipeline& pipeline = *made;
    const std::string& model_path = pipeline.model_path();
    ExplainOptions explain;
    explain.on = !opt->explain_dir.empty() || opt->explain_json;
    if (!opt->explain_class.empty() && !explain.on)
      throw Error("--explain-class needs --explain DIR or --explain-json");
    explain.target = class_index(pipeline.model().info, opt->explain_class);
    StageTimes times;
    times.load_cascade = pipeline.load_cascade_ms();
    times.load_model = pipeline.load_model_ms();
    std::vector<ImageResult> results;
    bool any_error = false, any_no_face = false;
    for (const std::string& f : files) {
      try {
        results.push_back(pipeline.analyze(f, &times, explain));
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
    if (!opt->explain_dir.empty()) write_explanations(opt->explain_dir, results, info);
    if (opt->json)
      std::cout << predict_json(results, model_path, info, opt->explain_json).dump(2) << "\n";
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
