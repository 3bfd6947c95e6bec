// Detector choice, detection scoring, landmarks and the level (rotated) face crop.
#include <doctest/doctest.h>

#include <cmath>

#include <opencv2/imgproc.hpp>

#include "apps/pipeline/pipeline.h"
#include "apps/vision/align.h"
#include "apps/vision/face.h"
#include "base/image.h"
#include "tests/face_eval.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::error_of;

namespace {

GrayImage example_face() {
  return load_gray_image(testing::source_dir() + "/examples/face.jpg");
}

// The image rotated by `deg` degrees (counter-clockwise, as cv::getRotationMatrix2D) about its
// centre, borders repeated: a face tilted by -deg.
GrayImage rotate_image(const GrayImage& img, double deg) {
  GrayImage out = img;
  cv::Mat src(img.height, img.width, CV_8UC1, const_cast<uint8_t*>(img.pixels.data()));
  cv::Mat dst(out.height, out.width, CV_8UC1, out.pixels.data());
  cv::warpAffine(src, dst, cv::getRotationMatrix2D(cv::Point2f(img.width / 2.f, img.height / 2.f), deg, 1.0),
                 dst.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  return out;
}

}  // namespace

TEST_CASE("detector and alignment names: parsed, and anything else is a clear error") {
  CHECK(parse_detector("hog") == DetectorKind::hog);
  CHECK(parse_detector("haar") == DetectorKind::haar);
  CHECK(parse_detector("lbp") == DetectorKind::lbp);
  CHECK(error_of([] { parse_detector("cnn"); }).find("choose hog, haar or lbp") != std::string::npos);
  CHECK(parse_align("none") == AlignKind::none);
  CHECK(parse_align("landmarks") == AlignKind::landmarks);
  CHECK(error_of([] { parse_align("eyes"); }).find("'eyes'") != std::string::npos);
  CHECK(std::string(detector_name(kDefaultDetector)) == "hog");
}

TEST_CASE("scoring: one-to-one matches at IoU >= 0.4, misses, false positives, ignored faces") {
  testing::AnnotatedImage truth;
  truth.faces = {{0, 0, 100, 100}, {200, 0, 50, 50}};
  truth.ignore = {{400, 400, 60, 60}};
  // A shifted box (IoU 0.68), a duplicate of it (false), a box on the ignored face, one on nothing.
  auto s = testing::score_detections(truth, {{10, 10, 100, 100}, {12, 10, 100, 100},
                                             {405, 400, 60, 60}, {600, 600, 40, 40}});
  CHECK(s.found == 1);
  CHECK(s.total == 2);
  CHECK(s.false_positives == 2);
  REQUIRE(s.missed.size() == 1);
  CHECK(s.missed[0] == FaceBox{200, 0, 50, 50});
  CHECK(testing::iou({0, 0, 10, 10}, {0, 0, 10, 10}) == doctest::Approx(1.0));
  CHECK(testing::iou({0, 0, 10, 10}, {5, 0, 10, 10}) == doctest::Approx(50.0 / 150.0));
}

TEST_CASE("every detector finds the one face of examples/face.jpg, and none in a flat image") {
  GrayImage face = example_face();
  GrayImage flat = load_gray_image(testing::source_dir() + "/tests/data/app/flat_gray.png");
  FaceDetector hog(DetectorKind::hog), haar(DetectorKind::haar), lbp(DetectorKind::lbp);
  auto h = hog.detect(face), c = haar.detect(face), l = lbp.detect(face);
  REQUIRE(h.size() == 1);
  REQUIRE(c.size() == 1);
  REQUIRE(l.size() == 1);
  // Different framings of the same face.
  CHECK(testing::iou(h[0], c[0]) > 0.5);
  CHECK(testing::iou(h[0], l[0]) > 0.5);
  CHECK(hog.detect(flat).empty());
  GrayImage tiny;
  tiny.width = tiny.height = 10;
  tiny.pixels.assign(100, 200);
  CHECK(hog.detect(tiny).empty());  // smaller than the HOG window even at 2x: no crash, no face
}

TEST_CASE("landmarks: eye centres and tilt from the 68 points") {
  std::vector<Point2f> pts(68, Point2f{50, 50});
  for (int i = 36; i < 42; ++i) pts[i] = {30, 40};  // subject's right eye, image left
  for (int i = 42; i < 48; ++i) pts[i] = {70, 60};  // lower: the face leans clockwise
  FaceLandmarks l = landmarks_from_points(pts);
  CHECK(l.left_eye.x == doctest::Approx(30));
  CHECK(l.right_eye.y == doctest::Approx(60));
  CHECK(l.angle == doctest::Approx(std::atan2(20.0, 40.0) * 180 / M_PI));
  CHECK(error_of([] { landmarks_from_points(std::vector<Point2f>(5)); }).find("68") !=
        std::string::npos);
}

TEST_CASE("alignment: a level face reads ~0 degrees, the same face turned by 20 reads ~20") {
  FaceAligner aligner;
  FaceDetector detector;
  GrayImage face = example_face();
  auto boxes = detector.detect(face);
  REQUIRE(boxes.size() == 1);
  FaceLandmarks level = aligner.locate(face, boxes[0]);
  INFO("level angle " << level.angle);
  CHECK(std::abs(level.angle) < 6);  // a portrait, roughly level
  for (double turn : {-20.0, 20.0}) {
    // The image turned counter-clockwise by `turn` tilts the eye line by -turn.
    GrayImage turned = rotate_image(face, turn);
    auto b = detector.detect(turned);
    REQUIRE(b.size() == 1);
    FaceLandmarks l = aligner.locate(turned, b[0]);
    INFO("turn " << turn << " angle " << l.angle);
    // The landmark fit is good to a few degrees on a 230 px face; 4 leaves room for that.
    CHECK(std::abs((l.angle - level.angle) + turn) < 4);
  }
}

TEST_CASE("rotated crop: angle 0 is the plain crop; a rotation undoes the same turn") {
  GrayImage face = example_face();
  FaceBox crop{150, 100, 300, 300};
  CHECK(rotated_face_image(face, crop, 0, 48).pixels == face_image(face, crop, 48).pixels);
  // Turn the whole image by -15 degrees about the crop centre, then crop with rotation +15:
  // the result is close to the plain crop of the original (bilinear twice: small differences).
  GrayImage turned = face;
  cv::Mat src(face.height, face.width, CV_8UC1, face.pixels.data());
  cv::Mat dst(turned.height, turned.width, CV_8UC1, turned.pixels.data());
  cv::warpAffine(src, dst, cv::getRotationMatrix2D(cv::Point2f(300, 250), -15, 1.0), dst.size(),
                 cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  GrayImage back = rotated_face_image(turned, crop, 15, 48);
  GrayImage plain = face_image(face, crop, 48);
  GrayImage wrong = rotated_face_image(turned, crop, -15, 48);
  auto mad = [](const GrayImage& a, const GrayImage& b) {
    double s = 0;
    for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(a.pixels[i] - b.pixels[i]);
    return s / a.pixels.size();
  };
  INFO("back " << mad(back, plain) << " wrong way " << mad(wrong, plain));
  CHECK(mad(back, plain) < 4);                    // two bilinear resamplings: a few grey levels
  CHECK(mad(wrong, plain) > 3 * mad(back, plain));  // the other direction is far off
}

TEST_CASE("alignment: a missing or bad landmark model is a clear error") {
  std::string msg = error_of([] { FaceAligner a("/nonexistent/landmarks.dat"); });
  CHECK(msg.find("/nonexistent/landmarks.dat not found") != std::string::npos);
  CHECK(msg.find("libdlib-data") != std::string::npos);
  std::string bad = error_of(
      [] { FaceAligner a(testing::source_dir() + "/tests/data/app/tracks_ok.csv"); });
  CHECK(bad.find("is not a dlib shape predictor") != std::string::npos);
}

TEST_CASE("pipeline faces: landmarks and rotation with an aligner, none without") {
  FaceDetector detector;
  FaceAligner aligner;
  GrayImage face = rotate_image(example_face(), 25);
  auto plain = find_faces(face, &detector, 0.1);
  REQUIRE(plain.size() == 1);
  CHECK(!plain[0].landmarks);
  CHECK(plain[0].rotation == 0);
  auto aligned = find_faces(face, &detector, 0.1, false, &aligner);
  REQUIRE(aligned.size() == 1);
  REQUIRE(aligned[0].landmarks);
  CHECK(aligned[0].landmarks->points.size() == 68);
  CHECK(aligned[0].rotation == aligned[0].landmarks->angle);
  CHECK(aligned[0].rotation < -15);  // turned counter-clockwise by 25: tilt about -25
}
