// FER+ rules on hand-made vote rows, and the join with fer2013 rows on the committed fixtures.
#include <doctest/doctest.h>

#include <fstream>

#include "base/error.h"
#include "datasets/dataset.h"
#include "datasets/ferplus.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

// Votes in fer2013new.csv column order:
// neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF
FerPlusVotes V(std::initializer_list<int> v) {
  FerPlusVotes out{};
  int j = 0;
  for (int x : v) out[j++] = (uint8_t)x;
  return out;
}

FerPlusOptions opts(FerPlusMode mode, int classes, bool single = true) {
  FerPlusOptions o;
  o.mode = mode;
  o.num_classes = classes;
  o.drop_single_votes = single;
  return o;
}

const FerPlusOptions kMaj7 = opts(FerPlusMode::majority, 7);
const FerPlusOptions kMaj8 = opts(FerPlusMode::majority, 8);
const FerPlusOptions kDist7 = opts(FerPlusMode::distribution, 7);
const FerPlusOptions kDist8 = opts(FerPlusMode::distribution, 8);

std::string data(const std::string& rel) { return testing::source_dir() + "/tests/data/" + rel; }

}  // namespace

TEST_CASE("ferplus majority: more than half of the votes, after removing single votes") {
  // 6 of 10 neutral: majority.
  FerPlusLabel l = ferplus_label(V({6, 0, 1, 1, 0, 0, 0, 0, 2, 0}), true, kMaj7);
  CHECK(l.keep);
  CHECK(l.label == kNeutral);
  // 5 of 10 is not more than half ...
  l = ferplus_label(V({5, 0, 0, 0, 3, 0, 0, 0, 2, 0}), true, kMaj7);
  CHECK(!l.keep);
  CHECK(std::string(l.drop_reason) == "no majority");
  // ... but once the single votes are removed, 5 of 9 is.
  l = ferplus_label(V({4, 5, 0, 0, 0, 0, 0, 0, 1, 0}), true, kMaj7);
  CHECK(l.keep);
  CHECK(l.label == kHappy);
  l = ferplus_label(V({4, 5, 0, 0, 0, 0, 0, 0, 1, 0}), true, opts(FerPlusMode::majority, 7, false));
  CHECK(!l.keep);  // 5 of 10 with the outlier kept
  // unknown / not-a-face majorities are dropped with their reason.
  CHECK(std::string(ferplus_label(V({2, 0, 0, 0, 0, 0, 0, 0, 6, 2}), true, kMaj7).drop_reason) == "unknown");
  CHECK(std::string(ferplus_label(V({0, 0, 0, 0, 0, 0, 0, 0, 0, 10}), true, kMaj7).drop_reason) == "not a face");
  // Contempt: dropped with 7 classes, class 7 with 8.
  CHECK(std::string(ferplus_label(V({0, 0, 2, 0, 0, 0, 0, 6, 2, 0}), true, kMaj7).drop_reason) == "contempt");
  l = ferplus_label(V({0, 0, 2, 0, 0, 0, 0, 6, 2, 0}), true, kMaj8);
  CHECK(l.keep);
  CHECK(l.label == kContempt);
  // Each FER+ column lands on its emotune class.
  for (int j = 0; j < 7; ++j) {
    FerPlusVotes v{};
    v[j] = 10;
    CHECK(ferplus_label(v, true, kMaj7).label == kFerplusColumnToClass[j]);
  }
  CHECK(std::string(ferplus_label(V({10}), false, kMaj7).drop_reason) == "no image name");
  CHECK(std::string(ferplus_label(V({1, 1, 1, 1, 1, 1, 1, 1, 1, 1}), true, kMaj7).drop_reason) == "no votes");
}

TEST_CASE("ferplus distribution: normalised emotion votes, drop rules, contempt handling") {
  FerPlusLabel l = ferplus_label(V({4, 0, 0, 1, 3, 2, 0, 0, 0, 0}), true, kDist7);
  REQUIRE(l.keep);
  // The single sadness vote is removed: neutral 4, anger 3, disgust 2 of 9.
  CHECK(l.dist[kNeutral] == doctest::Approx(4.0 / 9).epsilon(1e-6));  // float division, 1 ulp-ish
  CHECK(l.dist[kAngry] == doctest::Approx(3.0 / 9).epsilon(1e-6));
  CHECK(l.dist[kDisgust] == doctest::Approx(2.0 / 9).epsilon(1e-6));
  CHECK(l.dist[kSad] == 0.0f);
  CHECK(l.label == kNeutral);
  // Three-way tie: kept (9 of 9 votes are emotions), label by FER+ column order: neutral.
  l = ferplus_label(V({3, 0, 0, 3, 0, 0, 3, 0, 1, 0}), true, kDist7);
  CHECK(l.keep);
  CHECK(l.label == kNeutral);
  CHECK(l.dist[kFear] == doctest::Approx(1.0 / 3).epsilon(1e-6));  // float division
  // Unknown strictly on top: dropped; tied with an emotion: kept (emotions come first).
  CHECK(!ferplus_label(V({3, 0, 0, 0, 0, 0, 0, 0, 4, 3}), true, kDist7).keep);
  l = ferplus_label(V({4, 0, 0, 0, 0, 0, 0, 0, 4, 2}), true, kDist7);
  CHECK(!l.keep);  // tie kept by the top rule, but 4 emotion votes of 10 is not more than half
  CHECK(std::string(l.drop_reason) == "too few emotion votes");
  l = ferplus_label(V({4, 2, 0, 0, 0, 0, 0, 0, 4, 0}), true, kDist7);
  CHECK(l.keep);  // 6 of 10 emotion votes
  CHECK(l.dist[kNeutral] == doctest::Approx(4.0 / 6).epsilon(1e-6));  // float division
  // Contempt: 7 classes drop a contempt-topped row and remove contempt votes elsewhere.
  CHECK(std::string(ferplus_label(V({2, 0, 2, 0, 0, 0, 0, 6, 0, 0}), true, kDist7).drop_reason) == "contempt");
  l = ferplus_label(V({6, 0, 0, 0, 0, 0, 0, 4, 0, 0}), true, kDist7);
  CHECK(l.keep);
  CHECK(l.dist[kNeutral] == 1.0f);
  l = ferplus_label(V({6, 0, 0, 0, 0, 0, 0, 4, 0, 0}), true, kDist8);
  CHECK(l.dist[kNeutral] == doctest::Approx(0.6).epsilon(1e-6));  // float division
  CHECK(l.dist[kContempt] == doctest::Approx(0.4).epsilon(1e-6));
  // Distributions sum to one.
  l = ferplus_label(V({2, 3, 2, 0, 0, 2, 0, 0, 1, 0}), true, kDist8);
  float sum = 0;
  for (float p : l.dist) sum += p;
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));  // float rounding of 8 terms
}

TEST_CASE("ferplus: the fixture file, joined with the tiny fer2013 rows") {
  FerPlusTable t = load_ferplus(data("ferplus/tiny_ferplus.csv"));
  REQUIRE(t.size() == 6);
  CHECK(t.named == std::vector<uint8_t>{1, 1, 0, 1, 1, 1});
  CHECK(t.splits[3] == (uint8_t)Split::public_test);
  CHECK(t.votes[0][4] == 8);
  LoadOptions lo;
  lo.quiet = true;
  Dataset d = load_dataset(data("fer2013/tiny.csv"), lo);

  FerPlusJoinReport rep;
  Dataset maj = apply_ferplus(d, t, kMaj7, &rep);
  // Kept: row 0 (anger), row 1 (happy). Dropped: nameless, tie, contempt, unknown.
  CHECK(rep.kept == 2);
  CHECK(rep.dropped == 4);
  CHECK(maj.rows == std::vector<int32_t>{0, 1});
  CHECK(maj.labels == std::vector<uint8_t>{kAngry, kHappy});
  CHECK(!maj.has_soft());
  CHECK(std::equal(maj.images.begin(), maj.images.begin() + kFacePixels, d.image(0)));

  Dataset maj8 = apply_ferplus(d, t, kMaj8);
  CHECK(maj8.rows == std::vector<int32_t>{0, 1, 4});
  CHECK(maj8.labels.back() == kContempt);
  CHECK(maj8.num_classes == 8);

  FerPlusJoinReport drep;
  Dataset dist = apply_ferplus(d, t, kDist8, &drep);
  CHECK(dist.rows == std::vector<int32_t>{0, 1, 3, 4});
  REQUIRE(dist.has_soft());
  CHECK(dist.soft.size() == 4 * 8);
  CHECK(dist.soft[1 * 8 + kHappy] == doctest::Approx(5.0 / 9).epsilon(1e-6));  // float division
  CHECK(dist.labels[2] == kNeutral);  // the three-way tie, neutral first
  CHECK(drep.label_changed == 2);     // row 3 was fear (2) in FER-2013, row 4 surprise (5)
}

TEST_CASE("ferplus: join errors and bad files") {
  FerPlusTable t = load_ferplus(data("ferplus/tiny_ferplus.csv"));
  LoadOptions lo;
  lo.quiet = true;
  Dataset folders = load_dataset(data("faces"), lo);
  CHECK_THROWS_WITH_AS(apply_ferplus(folders, t, kMaj7),
                       doctest::Contains("no fer2013.csv row index"), Error);
  Dataset d = load_dataset(data("fer2013/tiny.csv"), lo);
  d.splits[0] = (uint8_t)Split::public_test;
  CHECK_THROWS_WITH_AS(apply_ferplus(d, t, kMaj7), doctest::Contains("says Training"), Error);
  d = load_dataset(data("fer2013/tiny.csv"), lo);
  d.rows[5] = 6;
  CHECK_THROWS_WITH_AS(apply_ferplus(d, t, kMaj7), doctest::Contains("row 6 is beyond the 6 rows"), Error);

  std::string dir = testing::temp_dir("datasets_ferplus_bad");
  auto write = [&](const std::string& name, const std::string& text) {
    std::ofstream(dir + "/" + name) << text;
    return dir + "/" + name;
  };
  const std::string header =
      "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";
  std::string p = write("header.csv", "Usage,Image name,neutral\n");
  CHECK_THROWS_WITH_AS(load_ferplus(p), doctest::Contains("header.csv:1: bad header"), Error);
  p = write("votes.csv", header + "Training,a.png,1,2,3,4,5,6,7,8,9,0\nTraining,b.png,1,2,x,4,5,6,7,8,9,0\n");
  CHECK_THROWS_WITH_AS(load_ferplus(p), doctest::Contains("votes.csv:3: field 'surprise': 'x' is not a vote count"), Error);
  p = write("usage.csv", header + "Train,a.png,1,2,3,4,5,6,7,8,9,0\n");
  CHECK_THROWS_WITH_AS(load_ferplus(p), doctest::Contains("usage.csv:2: field 'Usage': unknown Usage 'Train'"), Error);
  p = write("fields.csv", header + "Training,a.png,1,2,3\n");
  CHECK_THROWS_WITH_AS(load_ferplus(p), doctest::Contains("fields.csv:2: 5 fields, expected 12"), Error);
  CHECK_THROWS_AS(ferplus_mode_from_name("soft"), Error);
  CHECK(ferplus_mode_from_name("distribution") == FerPlusMode::distribution);
}
