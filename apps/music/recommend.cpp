#include "apps/music/recommend.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <numeric>

#include "base/error.h"

namespace emotune {
namespace {

// Positions on Russell's circumplex (Russell 1980, "A circumplex model of affect", JPSP 39:1161,
// Fig. 2; Posner, Russell & Peterson 2005 for the later placements), mapped from its [-1, 1] axes
// to the [0, 1] valence/energy of mood tables. The numbers are our reading of the quadrant and
// angle each emotion word occupies, not measured values; docs/music.md discusses each.
constexpr std::array<EmotionTarget, 8> kEmotionTargets = {{
    {"angry", {0.20, 0.85}, true,
     "unpleasant and highly aroused: Russell places 'angry' beside 'alarmed'/'tense', top left"},
    {"disgust", {0.20, 0.50}, true,
     "unpleasant, arousal near neutral: between anger and sadness in later circumplex studies"},
    {"fear", {0.25, 0.75}, true,
     "unpleasant and aroused ('afraid', top left), a little less extreme than anger on both axes"},
    {"happy", {0.80, 0.65}, false,
     "pleasant and moderately aroused ('happy', 'glad', 'delighted' lie just above the right axis)"},
    {"sad", {0.20, 0.25}, true,
     "unpleasant and de-activated ('sad', 'gloomy', 'depressed', bottom left)"},
    {"surprise", {0.65, 0.80}, false,
     "highly aroused, valence mildly positive ('astonished' lies near the top, right of centre)"},
    {"neutral", {0.50, 0.40}, false,
     "no valence either way; a resting face is a calm, slightly low-arousal state"},
    {"contempt", {0.30, 0.45}, true,
     "FER+ only: unpleasant but cool, less negative and less aroused than disgust"},
}};

std::string fold(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  std::string t = b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
  for (char& c : t)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return t;
}

}  // namespace

std::span<const EmotionTarget> emotion_targets() { return kEmotionTargets; }

const EmotionTarget& emotion_target(std::string_view class_name) {
  std::string n = fold(std::string(class_name));
  if (n == "disgusted") n = "disgust";
  if (n == "fearful") n = "fear";
  if (n == "surprised") n = "surprise";
  if (n == "anger") n = "angry";
  if (n == "happiness") n = "happy";
  if (n == "sadness") n = "sad";
  for (const auto& t : kEmotionTargets)
    if (n == t.name) return t;
  throw Error("emotion class '" + std::string(class_name) +
              "' has no valence/energy target (known: angry, disgust, fear, happy, sad, surprise, "
              "neutral, contempt)");
}

Policy parse_policy(std::string_view text) {
  if (text == "match") return Policy::match;
  if (text == "uplift") return Policy::uplift;
  throw Error("unknown policy '" + std::string(text) + "' (expected match or uplift)");
}

const char* policy_name(Policy p) { return p == Policy::match ? "match" : "uplift"; }

MoodTarget compute_mood_target(const std::vector<std::string>& classes,
                               const std::vector<float>& probabilities, Policy policy) {
  if (classes.size() != probabilities.size())
    throw Error("compute_mood_target: " + std::to_string(probabilities.size()) +
                " probabilities for " + std::to_string(classes.size()) + " classes");
  double total = 0;
  for (size_t i = 0; i < probabilities.size(); ++i) {
    if (!std::isfinite(probabilities[i]) || probabilities[i] < 0)
      throw Error("compute_mood_target: probability of '" + classes[i] + "' is " +
                  std::to_string(probabilities[i]));
    total += probabilities[i];
  }
  if (!(total > 0)) throw Error("compute_mood_target: all probabilities are zero");

  MoodTarget r;
  r.policy = policy;
  for (size_t i = 0; i < classes.size(); ++i) {
    const EmotionTarget& t = emotion_target(classes[i]);
    double w = probabilities[i] / total;
    r.mood.valence += w * t.point.valence;
    r.mood.energy += w * t.point.energy;
    if (t.negative) r.negative_mass += w;
  }
  r.target = r.mood;
  if (policy == Policy::uplift) {
    // Move valence part of the way toward a mildly positive goal, in proportion to how negative
    // the face is; a happy face (no negative mass, or already above the goal) is left alone.
    r.target.valence +=
        kUpliftStrength * r.negative_mass * std::max(0.0, kUpliftGoal - r.mood.valence);
  }
  r.valence_shift = r.target.valence - r.mood.valence;
  return r;
}

std::vector<RankedTrack> rank_tracks(const MoodTable& table, MoodPoint target, int top_n) {
  std::vector<RankedTrack> all;
  all.reserve(table.tracks.size());
  for (const Track& t : table.tracks)
    all.push_back({&t, std::hypot(t.valence - target.valence, t.energy - target.energy)});
  // Tracks are stored in row order, so comparing addresses is comparing rows.
  std::sort(all.begin(), all.end(), [](const RankedTrack& a, const RankedTrack& b) {
    if (a.distance != b.distance) return a.distance < b.distance;
    if (a.track->popularity != b.track->popularity) return a.track->popularity > b.track->popularity;
    if (a.track->id != b.track->id) return a.track->id < b.track->id;
    return a.track < b.track;
  });
  std::vector<RankedTrack> out;
  std::vector<std::string> artists;
  for (const RankedTrack& r : all) {
    if ((int)out.size() >= top_n) break;
    std::string a = fold(r.track->artist);
    if (std::find(artists.begin(), artists.end(), a) != artists.end()) continue;
    artists.push_back(a);
    out.push_back(r);
  }
  return out;
}

std::string explain_recommendation(const std::vector<std::string>& classes,
                                   const std::vector<float>& probabilities, const MoodTarget& t,
                                   bool unsure) {
  // The emotions that shaped the target: the top one always, then others of at least 5%, up to 3.
  std::vector<size_t> order(classes.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return probabilities[a] > probabilities[b]; });
  double total = std::accumulate(probabilities.begin(), probabilities.end(), 0.0);
  // Unsure: the target is the probability-weighted mix of the moods' targets (it always is; with a
  // sure face it lies close to the top mood's own), and no single mood is named.
  std::string s = unsure ? "unsure, so no single mood: " : "";
  char buf[160];
  for (size_t k = 0; k < order.size() && k < 3; ++k) {
    double p = total > 0 ? probabilities[order[k]] / total : 0;
    if (k > 0 && p < 0.05) break;
    std::snprintf(buf, sizeof buf, "%s%s %.0f%%", k ? ", " : "", classes[order[k]].c_str(), 100 * p);
    s += buf;
  }
  std::snprintf(buf, sizeof buf, " -> %starget valence %.2f energy %.2f",
                unsure ? "probability-weighted " : "", t.target.valence, t.target.energy);
  s += buf;
  if (t.policy == Policy::uplift) {
    std::snprintf(buf, sizeof buf, " (uplift: %+.2f valence)", t.valence_shift);
    s += buf;
  } else {
    s += " (match)";
  }
  s += "; tracks nearest to it, one per artist";
  return s;
}

}  // namespace emotune
