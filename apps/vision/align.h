// Face alignment: where the eyes are, how far the face is tilted, and the level crop the network
// sees. FER-2013 faces are roughly level; a face tilted by 20-30 degrees is read worse
// (docs/faces.md has the PublicTest measurement), so the crop is rotated until the eyes are level.
//
// Landmarks come from dlib's 68-point shape predictor (Debian's libdlib-data,
// /usr/share/dlib/shape_predictor_68_face_landmarks.dat, ~1 ms per face). Licence: Debian's
// copyright file lists the file as CC0 (Davis E. King), but it was trained on the iBUG 300-W data
// set, whose licence excludes commercial use; dlib's author advises asking a lawyer before using
// the model commercially. emotune uses it for research/personal use; --align none avoids it.
#pragma once
#include <array>
#include <memory>
#include <string>
#include <vector>

#include "apps/vision/face.h"
#include "base/image.h"

namespace emotune {

enum class AlignKind { none, landmarks };
// The default is none, decided by measurement (docs/faces.md): on PublicTest the shipped model
// reads faces tilted by up to 20 degrees as well without alignment (it was trained with +-10
// degree rotations) and gains only at 30 degrees (59.7% -> 70.0%), while loading the 100 MB model
// costs every predict/recommend process about a second, and the model's training data excludes
// commercial use. `--align landmarks` turns it on.
constexpr AlignKind kDefaultAlign = AlignKind::none;
AlignKind parse_align(const std::string& name);  // "none" | "landmarks", else emotune::Error
const char* align_name(AlignKind kind);

struct Point2f {
  float x = 0, y = 0;
};

struct FaceLandmarks {
  std::vector<Point2f> points;  // 68 points in iBUG 300-W order, image coordinates
  Point2f left_eye, right_eye;  // centres of the eyes as seen in the image (left = smaller x)
  // Tilt of the eye line in degrees, positive when the right eye (in the image) is lower,
  // i.e. the face is turned clockwise; rotating the image by -angle levels it. In [-90, 90].
  double angle = 0;
};

// Eye centres from the 68 points (means of points 36-41 and 42-47) and the tilt between them.
FaceLandmarks landmarks_from_points(std::vector<Point2f> points);

// $EMOTUNE_LANDMARKS (environment) overrides the build-time EMOTUNE_LANDMARKS_FILE.
std::string default_landmarks_path();

struct LandmarkBackend;

class FaceAligner {
 public:
  // Loads the shape predictor (~100 MB, 0.3-1 s). Throws emotune::Error naming the path and
  // `apt-get install libdlib-data` when it is missing or not a dlib shape predictor.
  explicit FaceAligner(const std::string& path = default_landmarks_path());
  ~FaceAligner();
  FaceAligner(const FaceAligner&) = delete;
  FaceAligner& operator=(const FaceAligner&) = delete;
  // The 68 points of the face inside `box`. Thread-safe, deterministic.
  FaceLandmarks locate(const GrayImage& image, const FaceBox& box) const;

 private:
  std::unique_ptr<LandmarkBackend> backend_;
};

// Faces tilted by less than this are not rotated: their crop stays the plain square crop
// (crop_box_with_margin + face_image), identical to the image-folder training path.
constexpr double kMinAlignAngle = 2.0;

// The square crop of side crop.w centred on crop's centre, rotated by `angle` degrees about that
// centre (so a face tilted by `angle` comes out level), resized to size x size with resize_gray.
// Pixels outside the image repeat the border. angle == 0 gives exactly face_image(image, crop).
GrayImage rotated_face_image(const GrayImage& image, const FaceBox& crop, double angle, int size);

}  // namespace emotune
