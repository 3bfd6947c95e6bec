// `emotune recommend --image IMAGE [--top N] [--policy match|uplift] [--tracks FILE]
//  [--model PATH] [--json] [--device cpu|cuda] [--no-detect] [--margin F] [--timing]`
// A photo in, a mood and tracks out. The mood is read from the largest face; its probabilities
// (all of them, not just the top class) give a point in valence/energy space, the policy may move
// it, and the nearest tracks are listed, one per artist (apps/music/recommend.h, docs/music.md).
//
// Exit status: 0 with recommendations; 2 when no face is found (no tracks are printed: without a
// face there is no mood, and a guess would look like an answer); 1 for any other error (missing
// or bad image, bad mood table, bad checkpoint, bad option).
#include "apps/cmd_recommend.h"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <sstream>

#include "apps/commands.h"
#include "base/error.h"

namespace emotune {
namespace {

double round4(double v) { return std::round(v * 1e4) / 1e4; }

// `s` cut or padded to `width` characters. Widths count UTF-8 code points, not bytes, so names
// like "Róisín Murphy" keep the columns aligned (printf's %-28s counts bytes).
std::string fit_column(const std::string& s, size_t width) {
  auto is_start = [](unsigned char c) { return (c & 0xC0) != 0x80; };
  size_t chars = 0;
  for (unsigned char c : s) chars += is_start(c);
  if (chars <= width) return s + std::string(width - chars, ' ');
  std::string out;
  size_t kept = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (is_start((unsigned char)s[i]) && ++kept > width - 3) break;
    out += s[i];
  }
  return out + "...";
}

}  // namespace

size_t largest_face(const std::vector<FaceResult>& faces) {
  size_t best = 0;
  for (size_t i = 1; i < faces.size(); ++i)
    if (faces[i].box.area() > faces[best].box.area()) best = i;
  return best;
}

Recommendation make_recommendation(const std::string& image, const std::vector<FaceResult>& faces,
                                   const std::vector<std::string>& classes, const MoodTable& table,
                                   Policy policy, int top_n) {
  if (faces.empty()) throw Error("no face found in " + image);
  Recommendation r;
  r.image = image;
  r.faces_found = (int)faces.size();
  r.face = faces[largest_face(faces)];
  r.classes = classes;
  r.target = compute_mood_target(classes, r.face.probabilities, policy);
  r.tracks = rank_tracks(table, r.target.target, top_n);
  r.tracks_file = table.path;
  r.explanation = explain_recommendation(classes, r.face.probabilities, r.target);
  return r;
}

nlohmann::ordered_json recommendation_json(const Recommendation& r, const MoodTable& table) {
  nlohmann::ordered_json doc;
  doc["image"] = r.image;
  doc["faces_found"] = r.faces_found;
  doc["face"] = {{"box", box_json(r.face.box)}, {"crop", box_json(r.face.crop)}};
  size_t t = top_class(r.face.probabilities);
  nlohmann::ordered_json probs;
  for (size_t c = 0; c < r.classes.size(); ++c)
    probs[r.classes[c]] = std::round((double)r.face.probabilities[c] * 1e6) / 1e6;
  doc["mood"] = {{"top",
                  {{"class", r.classes[t]},
                   {"probability", std::round((double)r.face.probabilities[t] * 1e6) / 1e6}}},
                 {"probabilities", probs}};
  doc["target"] = {{"policy", policy_name(r.target.policy)},
                   {"valence", round4(r.target.target.valence)},
                   {"energy", round4(r.target.target.energy)},
                   {"mood_valence", round4(r.target.mood.valence)},
                   {"mood_energy", round4(r.target.mood.energy)},
                   {"valence_shift", round4(r.target.valence_shift)},
                   {"negative_mass", round4(r.target.negative_mass)}};
  doc["explanation"] = r.explanation;
  doc["tracks_file"] = r.tracks_file;
  doc["tracks"] = nlohmann::ordered_json::array();
  for (size_t i = 0; i < r.tracks.size(); ++i) {
    const Track& tr = *r.tracks[i].track;
    nlohmann::ordered_json j;
    j["rank"] = i + 1;
    if (table.has_id) j["id"] = tr.id;
    j["artist"] = tr.artist;
    j["title"] = tr.title;
    j["valence"] = tr.valence;
    j["energy"] = tr.energy;
    j["distance"] = round4(r.tracks[i].distance);
    if (table.has_popularity) j["popularity"] = tr.popularity;
    if (table.has_mood) j["mood"] = tr.mood;
    doc["tracks"].push_back(j);
  }
  return doc;
}

std::string recommendation_text(const Recommendation& r, const MoodTable& table) {
  std::ostringstream os;
  char b[256];
  size_t t = top_class(r.face.probabilities);
  std::snprintf(b, sizeof b, "Mood:   %s %.0f%%  (", r.classes[t].c_str(),
                100.0 * r.face.probabilities[t]);
  os << b;
  for (size_t c = 0; c < r.classes.size(); ++c) {
    std::snprintf(b, sizeof b, "%s%s %.1f%%", c ? ", " : "", r.classes[c].c_str(),
                  100.0 * r.face.probabilities[c]);
    os << b;
  }
  os << ")\n";
  const FaceBox& fb = r.face.box;
  std::snprintf(b, sizeof b, "Face:   box x=%d y=%d w=%d h=%d", fb.x, fb.y, fb.w, fb.h);
  os << b;
  if (r.faces_found > 1) os << " (the largest of " << r.faces_found << " faces)";
  os << "\n";
  std::snprintf(b, sizeof b, "Target: valence %.2f energy %.2f, policy %s", r.target.target.valence,
                r.target.target.energy, policy_name(r.target.policy));
  os << b;
  if (r.target.policy == Policy::uplift) {
    std::snprintf(b, sizeof b, " (mood valence %.2f %+.2f)", r.target.mood.valence,
                  r.target.valence_shift);
    os << b;
  }
  os << "\nWhy:    " << r.explanation << "\n\n";
  std::snprintf(b, sizeof b, "  %-3s %-28s %-36s %7s %6s %6s\n", "#", "artist", "title", "valence",
                "energy", "dist");
  os << b;
  for (size_t i = 0; i < r.tracks.size(); ++i) {
    const Track& tr = *r.tracks[i].track;
    std::snprintf(b, sizeof b, "  %-3zu ", i + 1);
    os << b << fit_column(tr.artist, 28) << ' ' << fit_column(tr.title, 36);
    std::snprintf(b, sizeof b, " %7.2f %6.2f %6.3f\n", tr.valence, tr.energy, r.tracks[i].distance);
    os << b;
  }
  os << "\nTracks: " << table.tracks.size() << " in " << r.tracks_file << "\n";
  return os.str();
}

void add_recommend_command(CLI::App& app) {
  struct Options {
    std::string image;
    int top = 5;
    std::string policy = "match";
    std::string tracks = "data/music/tracks.csv";
    std::string model = kDefaultModel;
    bool json = false, no_detect = false;
    std::string device = "cpu";
    double margin = kDefaultFaceMargin;
    bool timing = false;
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
  cmd->add_option("--model", opt->model, "checkpoint (safetensors)")->capture_default_str();
  cmd->add_flag("--json", opt->json, "print JSON (schema: docs/music.md)");
  cmd->add_flag("--no-detect", opt->no_detect, "the whole image is the face");
  cmd->add_option("--device", opt->device, "cpu or cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--margin", opt->margin, "margin around the face, fraction of its side")
      ->capture_default_str();
  cmd->add_flag("--timing", opt->timing, "print the time of each stage to stderr");

  cmd->callback([opt]() {
    // Cheap checks first, so a typo in a path does not cost a model load.
    std::string tracks_path = opt->tracks == "data/music/tracks.csv"
                                  ? resolve_default_path(opt->tracks)
                                  : opt->tracks;
    std::string model_path = opt->model == kDefaultModel
                                 ? resolve_default_path(opt->model)
                                 : opt->model;
    std::vector<std::string> files = expand_image_paths({opt->image});
    if (files.size() != 1)
      throw Error(opt->image + ": recommend takes one image (use `emotune predict` for folders)");
    auto t0 = std::chrono::steady_clock::now();
    MoodTable table = read_mood_table(tracks_path);
    double table_ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    Policy policy = parse_policy(opt->policy);

    EmotionPipeline pipeline(model_path, parse_device(opt->device), !opt->no_detect, opt->margin,
                             /*listener=*/true);
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
