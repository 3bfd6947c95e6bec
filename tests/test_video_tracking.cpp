// The pure parts of `emotune watch` (apps/video): mood smoothing (time constant in seconds,
// hysteresis), the face tracker (ids through motion, new ids, ids freed), and the timeline
// summaries. No OpenCV, no model.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "apps/video/smoothing.h"
#include "apps/video/timeline.h"
#include "apps/video/tracker.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::contains;

namespace {

std::vector<float> onehot(size_t k, size_t n = 7) {
  std::vector<float> p(n, 0.0f);
  p[k] = 1.0f;
  return p;
}

// Smoothed probability of class 1, `seconds` after a step from class 0 to class 1, at `fps`.
double after_step(double fps, double tau, double seconds) {
  MoodSmoother s(7, {tau, 0.1});
  for (int i = 0; i < (int)std::lround(fps); ++i) s.update(onehot(0), 1.0 / fps);  // settled on 0
  const int steps = (int)std::lround(seconds * fps);
  for (int i = 0; i < steps; ++i) s.update(onehot(1), 1.0 / fps);
  return s.smoothed()[1];
}

}  // namespace

TEST_CASE("smoothing: step response follows 1 - exp(-t / tau) at any frame rate") {
  const double tau = 0.4;
  for (double fps : {15.0, 30.0, 60.0}) {
    INFO("fps " << fps);
    // 1e-9: the same closed form up to a few dozen double roundings.
    CHECK(std::fabs(after_step(fps, tau, tau) - (1 - std::exp(-1.0))) < 1e-9);
    CHECK(std::fabs(after_step(fps, tau, 2 * tau) - (1 - std::exp(-2.0))) < 1e-9);
    CHECK(std::fabs(after_step(fps, tau, 0.2) - (1 - std::exp(-0.5))) < 1e-9);
  }
  // Uneven frame times give the same result as even ones over the same time.
  MoodSmoother a(7, {tau, 0.1}), b(7, {tau, 0.1});
  a.update(onehot(0), 0);
  b.update(onehot(0), 0);
  a.update(onehot(1), 0.1);
  a.update(onehot(1), 0.3);
  for (int i = 0; i < 4; ++i) b.update(onehot(1), 0.1);
  CHECK(std::fabs(a.smoothed()[1] - b.smoothed()[1]) < 1e-12);
  CHECK(std::fabs(a.smoothed()[1] - (1 - std::exp(-0.4 / tau))) < 1e-12);
}

TEST_CASE("smoothing: first observation as is, tau 0 is no smoothing, sums stay 1") {
  std::vector<float> p = {0.1f, 0.05f, 0.05f, 0.5f, 0.1f, 0.1f, 0.1f};
  MoodSmoother s(7, {0.5, 0.1});
  s.update(p, 0.0);
  for (size_t i = 0; i < 7; ++i) CHECK(s.smoothed()[i] == doctest::Approx(p[i]));
  CHECK(s.label() == 3);
  std::vector<float> q = {0.6f, 0.05f, 0.05f, 0.1f, 0.1f, 0.05f, 0.05f};
  s.update(q, 0.2);
  double sum = 0;
  for (double v : s.smoothed()) sum += v;
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-6));  // a convex mix of two distributions
  MoodSmoother off(7, {0.0, 0.1});
  off.update(p, 0);
  off.update(q, 0.033);
  for (size_t i = 0; i < 7; ++i) CHECK(off.smoothed()[i] == doctest::Approx(q[i]));
}

TEST_CASE("smoothing: hysteresis keeps the label until another class leads clearly") {
  auto two = [](float a, float b) {
    std::vector<float> p(7, 0.0f);
    p[0] = a;
    p[1] = b;
    return p;
  };
  MoodSmoother s(7, {0.0, 0.1});  // no smoothing: the label logic alone
  s.update(two(0.52f, 0.48f), 0);
  CHECK(s.label() == 0);
  s.update(two(0.48f, 0.52f), 0.03);  // leads by 0.04 < 0.1
  CHECK(s.label() == 0);
  s.update(two(0.455f, 0.545f), 0.03);  // leads by 0.09, still under 0.1
  CHECK(s.label() == 0);
  s.update(two(0.40f, 0.60f), 0.03);  // leads by 0.20
  CHECK(s.label() == 1);
  s.update(two(0.52f, 0.48f), 0.03);  // back to a small lead for 0: stays 1
  CHECK(s.label() == 1);
  MoodSmoother flick(7, {0.0, 0.0});  // without hysteresis the label follows every flip
  int changes = 0;
  size_t last = 99;
  for (int i = 0; i < 10; ++i) {
    flick.update(i % 2 ? two(0.48f, 0.52f) : two(0.52f, 0.48f), 0.03);
    changes += flick.label() != last;
    last = flick.label();
  }
  CHECK(changes == 10);
}

TEST_CASE("smoothing: bad input is refused with a message") {
  CHECK(contains(testing::error_of([] { MoodSmoother(7, {-1.0, 0.1}); }), "--smooth"));
  CHECK(contains(testing::error_of([] { MoodSmoother(7, {NAN, 0.1}); }), "--smooth"));
  CHECK(contains(testing::error_of([] { MoodSmoother(7, {0.5, 1.0}); }), "--hysteresis"));
  MoodSmoother s(7, {0.5, 0.1});
  CHECK(contains(testing::error_of([&] { s.update(std::vector<float>(6, 0.1f), 0.1); }), "6 probabilities"));
  CHECK(contains(testing::error_of([&] { s.update({NAN, 0, 0, 0, 0, 0, 0}, 0.1); }), "not finite"));
  CHECK(contains(testing::error_of([&] { s.update(onehot(2), -0.1); }), "time step"));
  CHECK(s.empty());
}

TEST_CASE("tracker: IoU") {
  CHECK(box_iou({0, 0, 10, 10}, {0, 0, 10, 10}) == doctest::Approx(1.0));
  CHECK(box_iou({0, 0, 10, 10}, {5, 0, 10, 10}) == doctest::Approx(50.0 / 150.0));
  CHECK(box_iou({0, 0, 10, 10}, {10, 0, 10, 10}) == 0.0);
  CHECK(box_iou({0, 0, 0, 10}, {0, 0, 10, 10}) == 0.0);
}

TEST_CASE("tracker: ids kept through motion, new ids for new faces, freed when a face leaves") {
  FaceTracker t({0.3, 2});
  // Two faces moving 8 px per detection round (60 px boxes: IoU ~0.76).
  FaceBox a{10, 50, 60, 60}, b{200, 40, 60, 60};
  auto ids = t.update({a, b});
  CHECK(ids == std::vector<int>{1, 2});
  for (int round = 1; round <= 10; ++round) {
    FaceBox ma{a.x + 8 * round, a.y, 60, 60}, mb{b.x - 8 * round, b.y + 2 * round, 60, 60};
    // Detections in either order map to the same ids.
    auto got = round % 2 ? t.update({ma, mb}) : t.update({mb, ma});
    CHECK(got == (round % 2 ? std::vector<int>{1, 2} : std::vector<int>{2, 1}));
  }
  CHECK(t.tracks().size() == 2);
  // A third face enters far from both: a new id.
  FaceBox c{400, 300, 50, 50};
  FaceBox a10{a.x + 80, a.y, 60, 60}, b10{b.x - 80, b.y + 20, 60, 60};
  CHECK(t.update({a10, b10, c}) == std::vector<int>{1, 2, 3});
  // Face 2 leaves: kept through max_missed = 2 rounds, gone at the third.
  CHECK(t.update({a10, c}) == std::vector<int>{1, 3});
  CHECK(t.tracks().size() == 3);
  CHECK(t.tracks()[1].missed == 1);
  t.update({a10, c});
  CHECK(t.tracks().size() == 3);
  t.update({a10, c});
  REQUIRE(t.tracks().size() == 2);
  CHECK(t.tracks()[0].id == 1);
  CHECK(t.tracks()[1].id == 3);
  // It comes back at the same place: a new id (ids are never reused).
  CHECK(t.update({a10, b10, c}) == std::vector<int>{1, 4, 3});
  // A jump too far for the overlap test is a new person.
  CHECK(t.update({{a10.x + 300, a10.y, 60, 60}, b10, c})[0] == 5);
}

TEST_CASE("tracker: move and drop from the motion step; one detection never takes two tracks") {
  FaceTracker t;
  t.update({{0, 0, 40, 40}, {30, 0, 40, 40}});  // overlapping faces
  t.move(1, {5, 5, 40, 40});
  CHECK(t.tracks()[0].box == FaceBox{5, 5, 40, 40});
  t.move(42, {1, 1, 1, 1});  // unknown id: nothing
  // One detection overlapping both: the best overlap (track 1) takes it, track 2 misses.
  auto ids = t.update({{6, 5, 40, 40}});
  CHECK(ids == std::vector<int>{1});
  CHECK(t.tracks()[1].missed == 1);
  t.drop(1);
  REQUIRE(t.tracks().size() == 1);
  CHECK(t.tracks()[0].id == 2);
  CHECK(contains(testing::error_of([] { FaceTracker({0.0, 2}); }), "min_iou"));
  CHECK(contains(testing::error_of([] { FaceTracker({0.3, -1}); }), "max_missed"));
}

TEST_CASE("timeline: track summaries and mood segments") {
  // 10 fps; track 1 happy for 3 s then sad for 3 s; track 2 in view 1 s, neutral.
  std::vector<TimelineRow> rows;
  for (int f = 0; f < 60; ++f) {
    size_t k = f < 30 ? 3 : 4;
    std::vector<float> p(7, 0.0f);
    p[k] = 1;
    rows.push_back({f, f / 10.0, 1, {0, 0, 10, 10}, p, std::vector<double>(p.begin(), p.end()), k});
    if (f >= 10 && f < 20) {
      std::vector<float> n(7, 0.0f);
      n[6] = 1;
      rows.push_back({f, f / 10.0, 2, {50, 0, 10, 10}, n, std::vector<double>(n.begin(), n.end()), 6});
    }
  }
  auto s = summarize_tracks(rows, 7, 10.0);
  REQUIRE(s.size() == 2);
  CHECK(s[0].id == 1);
  CHECK(s[0].frames == 60);
  CHECK(s[0].seconds == doctest::Approx(6.0));
  CHECK(s[0].shares[3] == doctest::Approx(0.5));
  CHECK(s[0].shares[4] == doctest::Approx(0.5));
  CHECK(s[0].dominant == 3);  // tie: the lower index
  CHECK(s[1].frames == 10);
  CHECK(s[1].seconds == doctest::Approx(1.0));
  CHECK(s[1].first_s == doctest::Approx(1.0));
  CHECK(s[1].dominant == 6);
  // Segments: happy 0-3 s, sad 3-6 s; during 1-2 s the frame mean is half happy half neutral
  // (label happy by index on the tie), so no third segment.
  auto seg = mood_segments(rows, 7, 10.0, 2.0);
  REQUIRE(seg.size() == 2);
  CHECK(seg[0].label == 3);
  CHECK(seg[0].start_s == doctest::Approx(0.0));
  CHECK(seg[0].end_s == doctest::Approx(3.0));
  CHECK(seg[0].frames == 30);
  CHECK(seg[0].probabilities[6] == doctest::Approx(10 * 0.5 / 30));  // neutral while track 2 was in view
  CHECK(seg[1].label == 4);
  CHECK(seg[1].end_s == doctest::Approx(6.0));
  // A segment shorter than min_segment_s is absorbed: one segment for the clip.
  auto one = mood_segments(rows, 7, 10.0, 4.0);
  REQUIRE(one.size() == 1);
  CHECK(one[0].frames == 60);
  CHECK(mood_segments({}, 7, 10.0, 2.0).empty());
}
