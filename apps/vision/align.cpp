#include "apps/vision/align.h"

#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <dlib/image_processing/shape_predictor.h>
#include <dlib/opencv/cv_image.h>
#include <opencv2/imgproc.hpp>

#include "base/error.h"

#ifndef EMOTUNE_LANDMARKS_FILE
#define EMOTUNE_LANDMARKS_FILE "/usr/share/dlib/shape_predictor_68_face_landmarks.dat"
#endif

namespace emotune {

struct LandmarkBackend {
  dlib::shape_predictor predictor;  // operator() is const and keeps no state: thread-safe
};

AlignKind parse_align(const std::string& name) {
  if (name == "none") return AlignKind::none;
  if (name == "landmarks") return AlignKind::landmarks;
  throw Error("unknown alignment '" + name + "' (choose landmarks or none)");
}

const char* align_name(AlignKind kind) { return kind == AlignKind::none ? "none" : "landmarks"; }

FaceLandmarks landmarks_from_points(std::vector<Point2f> points) {
  if (points.size() != 68)
    throw Error("face landmarks: expected 68 points, got " + std::to_string(points.size()));
  FaceLandmarks l;
  l.points = std::move(points);
  auto mean = [&](int from) {
    Point2f p;
    for (int i = from; i < from + 6; ++i) {
      p.x += l.points[i].x / 6;
      p.y += l.points[i].y / 6;
    }
    return p;
  };
  // iBUG order: 36-41 the subject's right eye (image left), 42-47 the subject's left eye.
  Point2f a = mean(36), b = mean(42);
  if (a.x > b.x) std::swap(a, b);
  l.left_eye = a;
  l.right_eye = b;
  l.angle = std::atan2((double)b.y - a.y, (double)b.x - a.x) * 180.0 / M_PI;
  return l;
}

std::string default_landmarks_path() {
  const char* env = std::getenv("EMOTUNE_LANDMARKS");
  return env && *env ? env : EMOTUNE_LANDMARKS_FILE;
}

FaceAligner::FaceAligner(const std::string& path) : backend_(std::make_unique<LandmarkBackend>()) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error("face alignment: landmark model " + path +
                " not found (install Debian's libdlib-data: apt-get install libdlib-data, set "
                "EMOTUNE_LANDMARKS to the .dat file, or pass --align none)");
  try {
    dlib::deserialize(path) >> backend_->predictor;
  } catch (const std::exception& e) {
    throw Error("face alignment: " + path + " is not a dlib shape predictor (" + e.what() + ")");
  }
  if (backend_->predictor.num_parts() != 68)
    throw Error("face alignment: " + path + " has " +
                std::to_string(backend_->predictor.num_parts()) + " landmarks, expected 68");
}

FaceAligner::~FaceAligner() = default;

FaceLandmarks FaceAligner::locate(const GrayImage& image, const FaceBox& box) const {
  if (image.width <= 0 || image.height <= 0) throw Error("face alignment: empty image");
  cv::Mat gray(image.height, image.width, CV_8UC1, const_cast<uint8_t*>(image.pixels.data()));
  dlib::cv_image<unsigned char> img(gray);
  dlib::full_object_detection shape = backend_->predictor(
      img, dlib::rectangle(box.x, box.y, box.x + box.w - 1, box.y + box.h - 1));
  std::vector<Point2f> points(shape.num_parts());
  for (unsigned long i = 0; i < shape.num_parts(); ++i)
    points[i] = {(float)shape.part(i).x(), (float)shape.part(i).y()};
  return landmarks_from_points(std::move(points));
}

GrayImage rotated_face_image(const GrayImage& image, const FaceBox& crop, double angle, int size) {
  if (angle == 0) return face_image(image, crop, size);
  const int side = crop.w;
  cv::Mat gray(image.height, image.width, CV_8UC1, const_cast<uint8_t*>(image.pixels.data()));
  // Rotate about the crop centre by `angle` (OpenCV: positive = counter-clockwise in the image,
  // which undoes a clockwise tilt), then move that centre to the middle of a side x side patch.
  cv::Point2f centre(crop.x + crop.w / 2.0f, crop.y + crop.h / 2.0f);
  cv::Mat m = cv::getRotationMatrix2D(centre, angle, 1.0);
  m.at<double>(0, 2) += side / 2.0 - centre.x;
  m.at<double>(1, 2) += side / 2.0 - centre.y;
  GrayImage patch;
  patch.width = patch.height = side;
  patch.pixels.assign((size_t)side * side, 0);
  cv::Mat out(side, side, CV_8UC1, patch.pixels.data());
  cv::warpAffine(gray, out, m, out.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
  // The downscale to the network size is the shared resize_gray, as in training.
  return resize_gray(patch, size, size);
}

}  // namespace emotune
