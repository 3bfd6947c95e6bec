// The detection goal on real photos: the 11 photos of ../shared/data/photos (33 faces) against
// tests/data/faces_boxes.json. Skipped visibly (exit 77) when the shared photos are absent.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>

#include "apps/vision/face.h"
#include "base/image.h"
#include "tests/face_eval.h"
#include "tests/testing.h"

using namespace emotune;
namespace fs = std::filesystem;

namespace {

std::string photos_dir() { return testing::shared_dir() + "/data/photos/"; }

// Every test here needs the photos: without them the program reports a skip to CTest.
const bool g_photos = [] {
  if (fs::exists(photos_dir() + "dlib_2007_007763.jpg")) return true;
  std::printf("SKIPPED (no %s): detection recall on the shared photos\n", photos_dir().c_str());
  std::exit(77);
}();

testing::DetectionScore score_all(const FaceDetector& detector, bool verbose) {
  testing::DetectionScore total;
  auto truth = testing::read_face_boxes(testing::source_dir() + "/tests/data/faces_boxes.json");
  for (const auto& [name, ann] : truth) {
    auto s = testing::score_detections(ann, detector.detect(load_gray_image(photos_dir() + name)));
    total.found += s.found;
    total.total += s.total;
    total.false_positives += s.false_positives;
    if (verbose)
      std::printf("  %-24s %d/%d found, %d false\n", name.c_str(), s.found, s.total,
                  s.false_positives);
  }
  return total;
}

}  // namespace

TEST_CASE("the fixture holds the 33 faces of the 11 photos, as SOURCE.md counts them") {
  auto truth = testing::read_face_boxes(testing::source_dir() + "/tests/data/faces_boxes.json");
  CHECK(truth.size() == 11);
  int n = 0;
  for (const auto& [name, ann] : truth) {
    CHECK(fs::exists(photos_dir() + name));
    n += (int)ann.faces.size();
  }
  CHECK(n == 33);
}

TEST_CASE("the shipped detector finds >= 32 of 33 faces with <= 1 false positive") {
  FaceDetector detector;  // kDefaultDetector with its shipped options
  std::printf("%s:\n", detector_name(detector.kind()));
  auto s = score_all(detector, true);
  std::printf("%s: %d/%d faces at IoU >= %.1f, %d false positives\n", detector_name(detector.kind()),
              s.found, s.total, testing::kMatchIoU, s.false_positives);
  CHECK(s.total == 33);
  CHECK(s.found >= 32);
  CHECK(s.false_positives <= 1);
}

TEST_CASE("the listener search on the group photos falls back to every face") {
  // Every face there is < 15% of the shorter side: detect_listener must not come back empty.
  FaceDetector detector;
  GrayImage img = load_gray_image(photos_dir() + "dlib_2008_004176.jpg");
  CHECK(detector.detect_listener(img) == detector.detect(img));
  CHECK(detector.detect(img).size() == 7);
}
