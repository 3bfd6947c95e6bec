// Fuzz target: the mood-table reader (apps/music/mood_table.cpp, RFC 4180 CSV) and the ranking
// that runs on whatever it accepts, for both policies.
#include <cmath>

#include "apps/music/mood_table.h"
#include "apps/music/recommend.h"
#include "datasets/classes.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string text(reinterpret_cast<const char*>(data), size);
  return emotune::fuzz::run_accepting_errors([&] {
    emotune::MoodTable table = emotune::parse_mood_table(text, "fuzz.csv");
    for (const auto& t : table.tracks)
      if (!(t.valence >= 0 && t.valence <= 1 && t.energy >= 0 && t.energy <= 1) ||
          !std::isfinite(t.popularity))
        std::abort();
    const std::vector<std::string> classes = emotune::class_names(7);
    const std::vector<float> p = {0.3f, 0.05f, 0.1f, 0.05f, 0.2f, 0.25f, 0.05f};
    for (auto policy : {emotune::Policy::match, emotune::Policy::uplift}) {
      emotune::MoodTarget target = emotune::compute_mood_target(classes, p, policy);
      auto ranked = emotune::rank_tracks(table, target.target, 5);
      if (ranked.size() > 5 || ranked.size() > table.tracks.size()) std::abort();
      for (size_t i = 1; i < ranked.size(); ++i)
        if (ranked[i].distance < ranked[i - 1].distance) std::abort();
    }
  });
}
