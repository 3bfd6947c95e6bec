// `emotune recommend --image IMAGE [--top N] [--policy match|uplift] [--tracks FILE]
//  [--model PATH] [--json] [--device cpu|cuda] [--no-detect] [--margin F] [--timing]
//  [--detector hog|haar|lbp] [--align landmarks|none]`
// A photo in, a mood and tracks out. The mood is read from the largest face; its probabilities
// (all of them, not just the top class) give a point in valence/energy space, the policy may move
// it, and the nearest tracks are listed, one per artist (apps/music/recommend.h, docs/music.md).
//
// Exit status: 0 with recommendations; 2 when no face is found (no tracks are printed: without a
// face there is no mood, and a guess would look like an answer); 1 for any other error (missing
// or bad image, bad mood table, bad checkpoint, bad option).
#include <chrono>
#include <cstdio>
#include <iostream>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/report/recommend.h"
#include "base/error.h"

namespace emotune {

void add_recommend_command(CLI::App& app) {
  struct Options {
    std::string image;
    int top = 5;
    std::string policy = "match";
    std::string tracks = kDefaultTracks;
    FaceOptions faces;
    bool json = false, no_detect = false, timing = false;
  };
  auto opt = std::make_shared<Options>();
  CLI::App* cmd = app.add_subcommand(
      "recommend", "Read the mood of the face in IMAGE and recommend tracks for it");
  cmd->add_option("--image", opt->image, "photo with a face")->required();
  cmd->add_option("--top", opt->top, "number of tracks")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--policy", opt->policy,
                  "match: mirror the mood; uplift: move a negative mood toward positive valence")
      ->check(CLI::IsMember({"match", "uplift"}))
      ->capture_default_str();
  cmd->add_option("--tracks", opt->tracks, "mood table CSV (columns: data/music/README.md)")
      ->capture_default_str();
  add_face_options(cmd, opt->faces);
  cmd->add_flag("--json", opt->json, "print JSON (schema: docs/music.md)");
  cmd->add_flag("--no-detect", opt->no_detect, "the whole image is the face");
  cmd->add_flag("--timing", opt->timing, "print the time of each stage to stderr");

  cmd->callback([opt]() {
    // Cheap checks first, so a typo in a path does not cost a model load.
    std::string tracks_path = resolve_option_path(opt->tracks, kDefaultTracks);
    resolve_option_path(opt->faces.model, kDefaultModel);  // a missing model fails before the table loads
    std::vector<std::string> files = expand_image_paths({opt->image});
    if (files.size() != 1)
      throw Error(opt->image + ": recommend takes one image (use `emotune predict` for folders)");
    auto t0 = std::chrono::steady_clock::now();
    MoodTable table = read_mood_table(tracks_path);
    double table_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    Policy policy = parse_policy(opt->policy);

    const std::unique_ptr<EmotionPipeline> made = make_pipeline(opt->faces, !opt->no_detect, /*listener=*/true);
    const EmotionPipeline& pipeline = *made;
    for (const auto& c : pipeline.model().info.classes) emotion_target(c);  // every class known
    StageTimes times;
    times.load_cascade = pipeline.load_cascade_ms();
    times.load_model = pipeline.load_model_ms();
    ImageResult result = pipeline.analyze(files[0], &times);
    if (result.faces.empty()) {
      std::cerr << "emotune recommend: no face found in " << files[0]
                << " (no recommendation without a face; use --no-detect if the image is already "
                   "a face crop)\n";
      cli_exit_code() = 2;
      return;
    }
    auto t1 = std::chrono::steady_clock::now();
    Recommendation r = make_recommendation(files[0], result.faces,
                                           pipeline.model().info.classes, table, policy, opt->top);
    double rank_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
    if (opt->json)
      std::cout << recommendation_json(r, table).dump(2) << "\n";
    else
      std::cout << recommendation_text(r, table);
    std::cout.flush();
    if (opt->timing) {
      char b[512];
      std::snprintf(b, sizeof b, "timing: read tracks %.1f ms, %s, rank %.1f ms, total %.1f ms\n",
                    table_ms, times.str().c_str(), rank_ms,
                    std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0)
                        .count());
      std::cerr << b;
    }
  });
}

}  // namespace emotune
