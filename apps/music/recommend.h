// From emotion probabilities to tracks: each emotion has a target point in valence/energy space
// (Russell's circumplex, values and reasons in docs/music.md and kEmotionTargets), the mood's
// point is the probability-weighted mix of those targets, a policy may move it, and tracks are
// ranked by Euclidean distance to the result with at most one track per artist.
// Everything here is plain arithmetic, testable without a model.
#pragma once
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "apps/music/mood_table.h"

namespace emotune {

struct MoodPoint {
  double valence = 0;  // [0, 1]
  double energy = 0;   // [0, 1]
};

struct EmotionTarget {
  const char* name;    // canonical FER-2013 / FER+ class name
  MoodPoint point;
  bool negative;       // counted in the negative mass that `uplift` acts on
  const char* reason;  // one line, printed by docs and `recommend --explain-targets`
};

// The table of targets, FER-2013 order followed by FER+'s contempt.
std::span<const EmotionTarget> emotion_targets();
// Looks a class name up, accepting the Kaggle folder spellings (disgusted, fearful, surprised);
// throws emotune::Error naming the class when the model has a class without a target.
const EmotionTarget& emotion_target(std::string_view class_name);

enum class Policy { match, uplift };
Policy parse_policy(std::string_view text);  // "match" | "uplift"; else emotune::Error
const char* policy_name(Policy p);

// uplift: valence' = valence + kUpliftStrength * negative_mass * max(0, kUpliftGoal - valence);
// energy is kept (see docs/music.md for why).
constexpr double kUpliftStrength = 0.5;
constexpr double kUpliftGoal = 0.7;

struct MoodTarget {
  MoodPoint mood;            // the probability-weighted mix ("match" target)
  MoodPoint target;          // after the policy
  Policy policy = Policy::match;
  double negative_mass = 0;  // sum of probabilities of negative emotions
  double valence_shift = 0;  // target.valence - mood.valence
};

// `probabilities` are in `classes` order; they are renormalised to sum to 1 (a softmax output
// already does; a user-edited input may not). Throws on a size mismatch, a negative or
// non-finite value, or an all-zero vector.
MoodTarget compute_mood_target(const std::vector<std::string>& classes,
                               const std::vector<float>& probabilities, Policy policy);

struct RankedTrack {
  const Track* track;
  double distance;
};

// The top_n tracks nearest to `target`, at most one per artist (artist names compared after
// trimming and ASCII case folding). Order: distance ascending, then popularity descending, then
// id ascending, then row order - so equal points (common in the Deezer table) rank the same way
// on every run and machine.
std::vector<RankedTrack> rank_tracks(const MoodTable& table, MoodPoint target, int top_n);

// "sad 62%, neutral 21% -> target valence 0.31 energy 0.32 (uplift: +0.15 valence); tracks
// nearest to it, one per artist". `unsure` (no mood likely enough to name, apps/pipeline) says so:
// "unsure, so no single mood: sad 38%, neutral 34% -> probability-weighted target ...".
std::string explain_recommendation(const std::vector<std::string>& classes,
                                   const std::vector<float>& probabilities, const MoodTarget& t,
                                   bool unsure = false);

}  // namespace emotune
