// Mood tables, emotion targets, policies and ranking (apps/music): no model needed.
#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <set>

#include "apps/music/mood_table.h"
#include "apps/music/recommend.h"
#include "base/error.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::error_of;

namespace {

const std::vector<std::string> kFer = {"angry", "disgust", "fear", "happy",
                                       "sad",   "surprise", "neutral"};

std::string fixture(const std::string& name) {
  return testing::source_dir() + "/tests/data/app/" + name;
}

std::vector<float> one_hot(const std::string& cls) {
  std::vector<float> p(kFer.size(), 0.0f);
  for (size_t i = 0; i < kFer.size(); ++i)
    if (kFer[i] == cls) p[i] = 1.0f;
  return p;
}

std::vector<float> random_probabilities(uint64_t seed) {
  std::vector<float> p = testing::random_vector(kFer.size(), seed, 0.0f, 1.0f);
  float s = 0;
  for (float v : p) s += v;
  for (float& v : p) v /= s;
  return p;
}

}  // namespace

TEST_CASE("mood table: a valid table with quotes, popularity and mood is read field by field") {
  MoodTable t = read_mood_table(fixture("tracks_ok.csv"));
  REQUIRE(t.tracks.size() == 7);
  CHECK(t.has_id);
  CHECK(t.has_popularity);
  CHECK(t.has_mood);
  CHECK(t.tracks[0].title == "Bright, Loud");
  CHECK(t.tracks[2].title == "Quote \"Me\"");
  CHECK(t.tracks[1].popularity == 90);
  CHECK(t.tracks[6].mood == "energetic");
  CHECK(t.tracks[3].valence == doctest::Approx(0.20));
  CHECK(t.tracks[3].energy == doctest::Approx(0.25));
  CHECK(t.tracks[3].line == 5);
}

TEST_CASE("mood table: aliases, column order, CRLF, BOM and blank lines") {
  std::string text =
      "\xEF\xBB\xBF" "energy,extra,Name,ARTIST,valence\r\n0.5,x,Song,Band,0.25\r\n\r\n"
      "1,y,\"Multi\nLine\",Other,0\r\n";
  MoodTable t = parse_mood_table(text, "inline.csv");
  REQUIRE(t.tracks.size() == 2);
  CHECK_FALSE(t.has_id);
  CHECK_FALSE(t.has_popularity);
  CHECK(t.tracks[0].title == "Song");
  CHECK(t.tracks[0].artist == "Band");
  CHECK(t.tracks[0].valence == 0.25);
  CHECK(t.tracks[0].energy == 0.5);
  CHECK(t.tracks[1].title == "Multi\nLine");
  CHECK(t.tracks[1].line == 4);  // the blank line is counted
  CHECK(t.tracks[1].energy == 1.0);
}

TEST_CASE("mood table: every bad input names file, line, column") {
  CHECK(error_of([] { read_mood_table(fixture("tracks_missing_energy.csv")); })
            .find("tracks_missing_energy.csv:1: missing required column 'energy'") !=
        std::string::npos);
  std::string bad = error_of([] { read_mood_table(fixture("tracks_bad_number.csv")); });
  CHECK(bad.find("tracks_bad_number.csv:3:3: column 'valence': 'high' is not a number") !=
        std::string::npos);
  std::string range = error_of([] { read_mood_table(fixture("tracks_out_of_range.csv")); });
  CHECK(range.find("tracks_out_of_range.csv:3:4: column 'energy': 1.7 is outside [0, 1]") !=
        std::string::npos);
  std::string nan = error_of([] { read_mood_table(fixture("tracks_nan.csv")); });
  CHECK(nan.find("tracks_nan.csv:2:3: column 'valence': 'nan' is not a finite number") !=
        std::string::npos);
  CHECK(error_of([] { read_mood_table(fixture("no_such_table.csv")); }).find("not found") !=
        std::string::npos);
  CHECK(error_of([] { read_mood_table(fixture("")); }).find("not a regular file") !=
        std::string::npos);

  auto parse_error = [](const std::string& text) {
    return error_of([&] { parse_mood_table(text, "t.csv"); });
  };
  CHECK(parse_error("").find("t.csv: empty mood table") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\n").find("no tracks") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\nA,B,0.5\n")
            .find("t.csv:2: expected 4 fields like the header, found 3") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\nA,\"B,0.5,0.5\n")
            .find("t.csv:2:2: unterminated quoted field") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\nA,B,-0.1,0.5\n")
            .find("t.csv:2:3: column 'valence': -0.1 is outside [0, 1]") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\nA,B,inf,0.5\n").find("not a finite number") !=
        std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\nA,B,0.5x,0.5\n").find("'0.5x' is not a number") !=
        std::string::npos);
  CHECK(parse_error("artist,title,valence,energy\n,B,0.5,0.5\n")
            .find("t.csv:2:1: column 'artist': empty") != std::string::npos);
  CHECK(parse_error("artist,title,name,valence,energy\nA,B,C,0.5,0.5\n")
            .find("column 'title' appears twice") != std::string::npos);
  CHECK(parse_error("artist,title,valence,energy,popularity\nA,B,0.5,0.5,-3\n")
            .find("t.csv:2:5: column 'popularity': -3 is negative") != std::string::npos);
}

TEST_CASE("mood table: the shipped table loads whole and in range") {
  MoodTable t = read_mood_table(testing::source_dir() + "/data/music/tracks.csv");
  CHECK(t.tracks.size() == 18644);  // every row of the Deezer release (data/music/README.md)
  std::set<std::string> ids, artists;
  size_t empty_ids = 0;
  for (const Track& tr : t.tracks) {
    empty_ids += tr.id.empty();
    ids.insert(tr.id);
    artists.insert(tr.artist);
  }
  CHECK(empty_ids == 0);
  CHECK(ids.size() == t.tracks.size());  // deduplicated by id
  CHECK(artists.size() == 4221);
}

TEST_CASE("mood table: a Spotify-style user table (data_moods.csv) reads as it is") {
  std::string path = testing::shared_dir() + "/data/music/data_moods.csv";
  if (!std::filesystem::exists(path)) {
    MESSAGE("SKIPPED (no ../shared/data/music): data_moods.csv as a user table");
    return;
  }
  MoodTable t = read_mood_table(path);
  CHECK(t.tracks.size() == 686);  // SOURCE.md: 686 tracks
  CHECK(t.has_popularity);
  CHECK(t.has_mood);
}

TEST_CASE("targets: a one-hot face gives that emotion's target, a mix gives the weighted mean") {
  for (const auto& cls : kFer) {
    MoodTarget t = compute_mood_target(kFer, one_hot(cls), Policy::match);
    CHECK(t.target.valence == doctest::Approx(emotion_target(cls).point.valence));
    CHECK(t.target.energy == doctest::Approx(emotion_target(cls).point.energy));
  }
  for (uint64_t seed = 1; seed <= 20; ++seed) {
    std::vector<float> p = random_probabilities(seed);
    double v = 0, e = 0;
    for (size_t i = 0; i < kFer.size(); ++i) {
      v += p[i] * emotion_target(kFer[i]).point.valence;
      e += p[i] * emotion_target(kFer[i]).point.energy;
    }
    MoodTarget t = compute_mood_target(kFer, p, Policy::match);
    // float probabilities summed in double: agreement to float rounding of the inputs.
    CHECK(t.target.valence == doctest::Approx(v).epsilon(1e-6));
    CHECK(t.target.energy == doctest::Approx(e).epsilon(1e-6));
    CHECK(t.valence_shift == 0.0);
  }
  // Unnormalised input is renormalised: scaling all probabilities changes nothing.
  std::vector<float> p = random_probabilities(7), q = p;
  for (float& x : q) x *= 3.0f;
  CHECK(compute_mood_target(kFer, q, Policy::match).target.valence ==
        doctest::Approx(compute_mood_target(kFer, p, Policy::match).target.valence));
}

TEST_CASE("targets: class names from other sources and bad probability vectors") {
  CHECK(emotion_target("Fearful").point.energy == emotion_target("fear").point.energy);
  CHECK(emotion_target("surprised").point.valence == emotion_target("surprise").point.valence);
  CHECK(std::string(emotion_target("contempt").name) == "contempt");
  CHECK(error_of([] { emotion_target("cat"); }).find("'cat' has no valence/energy target") !=
        std::string::npos);
  CHECK(error_of([] { compute_mood_target(kFer, {0.5f, 0.5f}, Policy::match); })
            .find("2 probabilities for 7 classes") != std::string::npos);
  CHECK(error_of([] { compute_mood_target(kFer, std::vector<float>(7, 0.0f), Policy::match); })
            .find("all probabilities are zero") != std::string::npos);
  std::vector<float> nan_p = one_hot("sad");
  nan_p[0] = NAN;
  CHECK(error_of([&] { compute_mood_target(kFer, nan_p, Policy::match); })
            .find("probability of 'angry'") != std::string::npos);
  CHECK(error_of([] { parse_policy("cheer"); }).find("unknown policy 'cheer'") != std::string::npos);
}

TEST_CASE("uplift: moves a sad face toward positive valence, leaves a happy face alone") {
  MoodTarget sad = compute_mood_target(kFer, one_hot("sad"), Policy::uplift);
  // Formula (recommend.h): 0.2 + 0.5 * 1 * (0.7 - 0.2) = 0.45.
  CHECK(sad.mood.valence == doctest::Approx(0.20));
  CHECK(sad.target.valence == doctest::Approx(0.45));
  CHECK(sad.valence_shift == doctest::Approx(0.25));
  CHECK(sad.target.energy == doctest::Approx(sad.mood.energy));  // energy is kept

  MoodTarget happy = compute_mood_target(kFer, one_hot("happy"), Policy::uplift);
  CHECK(happy.valence_shift == 0.0);
  CHECK(happy.target.valence == happy.mood.valence);

  for (uint64_t seed = 100; seed < 130; ++seed) {
    std::vector<float> p = random_probabilities(seed);
    MoodTarget m = compute_mood_target(kFer, p, Policy::match);
    MoodTarget u = compute_mood_target(kFer, p, Policy::uplift);
    CHECK(u.mood.valence == m.target.valence);
    CHECK(u.target.energy == m.target.energy);
    CHECK(u.target.valence >= m.target.valence);
    // Never past the goal, and no more than strength * negative mass of the gap.
    CHECK(u.target.valence <= std::max(kUpliftGoal, m.target.valence) + 1e-12);
    CHECK(u.valence_shift <= kUpliftStrength * u.negative_mass *
                                     std::max(0.0, kUpliftGoal - m.target.valence) + 1e-12);
  }
}

TEST_CASE("ranking: nearest first, one track per artist, ties by popularity then id") {
  std::string text =
      "id,artist,title,valence,energy,popularity\n"
      "b,Same,Tie low pop,0.5,0.5,10\n"
      "a,Other,Tie low pop id a,0.5,0.5,10\n"
      "c,Third,Tie high pop,0.5,0.5,80\n"
      "d,Same,Nearer but same artist as b?,0.5,0.5,5\n"
      "e,Far,Far away,0.9,0.9,100\n"
      "f,same ,Case and space variant of Same,0.51,0.5,100\n";
  MoodTable t = parse_mood_table(text, "tie.csv");
  auto r = rank_tracks(t, {0.5, 0.5}, 10);
  REQUIRE(r.size() == 4);  // Same/same collapse to one artist
  CHECK(r[0].track->id == "c");  // equal distance: popularity 80 first
  CHECK(r[1].track->id == "a");  // then popularity 10: id a before b
  CHECK(r[2].track->id == "b");
  CHECK(r[3].track->id == "e");  // d and f are the artist of b
  CHECK(r[0].distance == 0.0);
  CHECK(r[3].distance == doctest::Approx(std::hypot(0.4, 0.4)));
  // top_n cuts the list.
  CHECK(rank_tracks(t, {0.5, 0.5}, 2).size() == 2);
}

TEST_CASE("ranking: random tables obey the rules against a brute-force check") {
  for (uint64_t seed = 1; seed <= 10; ++seed) {
    auto v = testing::random_vector(300, seed, 0.0f, 1.0f);
    auto e = testing::random_vector(300, seed + 1000, 0.0f, 1.0f);
    auto a = testing::random_vector(300, seed + 2000, 0.0f, 40.0f);
    std::string text = "id,artist,title,valence,energy\n";
    for (int i = 0; i < 300; ++i) {
      // Quantised values create exact ties; 40 artists create repeats.
      text += "id" + std::to_string(1000 + i) + ",artist" + std::to_string((int)a[i]) + ",t," +
              std::to_string(std::round(v[i] * 10) / 10) + "," +
              std::to_string(std::round(e[i] * 10) / 10) + "\n";
    }
    MoodTable t = parse_mood_table(text, "random.csv");
    MoodPoint target{v[0] * 0.8 + 0.1, e[1] * 0.8 + 0.1};
    auto r = rank_tracks(t, target, 15);
    REQUIRE(r.size() == 15);
    std::set<std::string> artists;
    for (size_t k = 0; k < r.size(); ++k) {
      CHECK(artists.insert(r[k].track->artist).second);  // one per artist
      if (k) CHECK(r[k - 1].distance <= r[k].distance);  // nearest first
    }
    // No skipped track of a new artist is better than the last one taken.
    for (const Track& tr : t.tracks) {
      if (artists.count(tr.artist)) continue;
      double d = std::hypot(tr.valence - target.valence, tr.energy - target.energy);
      CHECK(d >= r.back().distance);
    }
    // Same input, same output: deterministic.
    auto again = rank_tracks(t, target, 15);
    for (size_t k = 0; k < r.size(); ++k) CHECK(again[k].track == r[k].track);
  }
}

TEST_CASE("explanation: names the leading emotions, the target and the policy") {
  std::vector<float> p = {0.03f, 0.01f, 0.08f, 0.02f, 0.62f, 0.03f, 0.21f};
  MoodTarget u = compute_mood_target(kFer, p, Policy::uplift);
  std::string s = explain_recommendation(kFer, p, u);
  char want[200];
  std::snprintf(want, sizeof want,
                "sad 62%%, neutral 21%%, fear 8%% -> target valence %.2f energy %.2f (uplift: %+.2f "
                "valence); tracks nearest to it, one per artist",
                u.target.valence, u.target.energy, u.valence_shift);
  CHECK(s == want);
  CHECK(u.valence_shift > 0.1);
  MoodTarget m = compute_mood_target(kFer, one_hot("happy"), Policy::match);
  CHECK(explain_recommendation(kFer, one_hot("happy"), m) ==
        "happy 100% -> target valence 0.80 energy 0.65 (match); tracks nearest to it, one per "
        "artist");
}
