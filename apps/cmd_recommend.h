// `emotune recommend`: the output documents, separate from the command so tests can check them
// on hand-made probabilities without a model.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/cmd_predict.h"
#include "apps/music/recommend.h"

namespace emotune {

struct Recommendation {
  std::string image;
  int faces_found = 0;                // by FaceDetector::detect_listener (listener-sized first)
  FaceResult face;                    // the face the mood was read from (the largest)
  std::vector<std::string> classes;   // model class order
  MoodTarget target;
  std::vector<RankedTrack> tracks;
  std::string tracks_file;
  std::string explanation;
};

// The face a recommendation is for: the largest box (a listener's own photo is a close-up;
// faces in the background are smaller), the first in left-to-right order on a tie.
size_t largest_face(const std::vector<FaceResult>& faces);

// Builds everything after the model: target, ranking, explanation.
Recommendation make_recommendation(const std::string& image, const std::vector<FaceResult>& faces,
                                   const std::vector<std::string>& classes, const MoodTable& table,
                                   Policy policy, int top_n);

// Schema (docs/music.md): {"image", "faces_found", "face": {"box", "crop"}, "mood": {"top":
//  {"class", "probability"}, "probabilities": {...}}, "target": {"policy", "valence", "energy",
//  "mood_valence", "mood_energy", "valence_shift", "negative_mass"}, "explanation",
//  "tracks_file", "tracks": [{"rank", "id"?, "artist", "title", "valence", "energy",
//  "distance", "popularity"?}]}
nlohmann::ordered_json recommendation_json(const Recommendation& r, const MoodTable& table);
std::string recommendation_text(const Recommendation& r, const MoodTable& table);

}  // namespace emotune
