// Output of `emotune recommend`: the JSON document and the text (schemas in docs/music.md).
// Plain functions of a Recommendation, so the tests can check them on hand-made values.
#include "apps/report/recommend.h"

#include <cmath>
#include <cstdio>
#include <sstream>

#include "apps/report/predict.h"

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
                 {"unsure", r.face.unsure},
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
  os << "Mood:   " << mood_text(r.face.probabilities, r.classes, r.face.unsure) << "  (";
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

}  // namespace emotune
