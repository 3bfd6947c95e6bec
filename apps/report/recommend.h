// The documents `emotune recommend` prints (JSON and text), separate from the command so tests
// can check them on hand-made probabilities without a model, and shared with every command that
// answers with the same schema. The recommendation itself is apps/pipeline/recommendation.h.
#pragma once
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/music/mood_table.h"
#include "apps/pipeline/recommendation.h"

namespace emotune {

// Schema (docs/music.md): {"image", "faces_found", "face": {"box", "crop"}, "mood": {"top":
//  {"class", "probability"}, "probabilities": {...}}, "target": {"policy", "valence", "energy",
//  "mood_valence", "mood_energy", "valence_shift", "negative_mass"}, "explanation",
//  "tracks_file", "tracks": [{"rank", "id"?, "artist", "title", "valence", "energy",
//  "distance", "popularity"?}]}
nlohmann::ordered_json recommendation_json(const Recommendation& r, const MoodTable& table);
std::string recommendation_text(const Recommendation& r, const MoodTable& table);

}  // namespace emotune
