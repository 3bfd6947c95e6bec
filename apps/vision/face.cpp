#include "apps/vision/face.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>

#include <opencv2/imgproc.hpp>

#include "apps/vision/detectors.h"
#include "base/error.h"

#ifndef EMOTUNE_HAAR_DIR
#define EMOTUNE_HAAR_DIR "/usr/share/opencv4/haarcascades"
#endif

namespace emotune {

DetectorKind parse_detector(const std::string& name) {
  if (name == "hog") return DetectorKind::hog;
  if (name == "haar") return DetectorKind::haar;
  if (name == "lbp") return DetectorKind::lbp;
  throw Error("unknown face detector '" + name + "' (choose hog, haar or lbp)");
}

const char* detector_name(DetectorKind kind) {
  switch (kind) {
    case DetectorKind::hog: return "hog";
    case DetectorKind::haar: return "haar";
    case DetectorKind::lbp: return "lbp";
  }
  return "?";
}

FaceDetectorOptions default_detector_options(DetectorKind kind) {
  FaceDetectorOptions o;
  if (kind == DetectorKind::hog) o.min_face_fraction = 0.1;
  if (kind == DetectorKind::lbp) o.min_neighbors = 4;
  return o;
}

std::string default_cascade_path(DetectorKind kind) {
  const char* env = std::getenv("EMOTUNE_HAAR_DIR");
  std::string dir = env && *env ? env : EMOTUNE_HAAR_DIR;
  if (kind == DetectorKind::lbp) return dir + "/../lbpcascades/lbpcascade_frontalface.xml";
  return dir + "/haarcascade_frontalface_default.xml";
}

FaceDetector::FaceDetector(DetectorKind kind) : FaceDetector(kind, default_detector_options(kind)) {}

FaceDetector::FaceDetector(DetectorKind kind, FaceDetectorOptions options)
    : options_(options), kind_(kind) {
  if (kind == DetectorKind::hog)
    backend_ = make_hog_backend();
  else
    backend_ = make_cascade_backend(default_cascade_path(kind), options.scale_factor,
                                    options.min_neighbors);
}

FaceDetector::FaceDetector(const std::string& cascade_path, FaceDetectorOptions options)
    : backend_(make_cascade_backend(cascade_path, options.scale_factor, options.min_neighbors)),
      options_(options),
      kind_(DetectorKind::haar) {}

FaceDetector::~FaceDetector() = default;
FaceDetector::FaceDetector(FaceDetector&&) noexcept = default;
FaceDetector& FaceDetector::operator=(FaceDetector&&) noexcept = default;

std::vector<FaceBox> FaceDetector::detect(const GrayImage& image) const {
  return detect_min(image, options_.min_face_fraction);
}

std::vector<FaceBox> FaceDetector::detect_listener(const GrayImage& image) const {
  if (kind_ == DetectorKind::hog) {
    // HOG on the coarser listener image frames faces in coarser steps (66 and 66 px instead of
    // 63 and 75 on tests/data/app/two_people.jpg), which changed which of two similar faces was
    // the largest: search at the full scale and keep the listener-sized faces.
    auto all = detect(image);
    std::vector<FaceBox> big;
    double min_side = kListenerFaceFraction * std::min(image.width, image.height);
    for (const FaceBox& b : all)
      if (std::max(b.w, b.h) >= min_side) big.push_back(b);
    return big.empty() ? all : big;
  }
  auto faces = detect_min(image, std::max(options_.min_face_fraction, kListenerFaceFraction));
  return faces.empty() ? detect(image) : faces;
}

std::vector<FaceBox> FaceDetector::detect_min(const GrayImage& image,
                                              double min_face_fraction) const {
  if (image.width <= 0 || image.height <= 0) return {};
  // A header over the decoded pixels: no copy, no second decoder.
  cv::Mat gray(image.height, image.width, CV_8UC1, const_cast<uint8_t*>(image.pixels.data()));

  double scale = 1.0;
  int longer = std::max(image.width, image.height);
  cv::Mat work = gray;
  if (longer > options_.max_detect_side) {
    scale = (double)options_.max_detect_side / longer;
    cv::resize(gray, work, cv::Size(), scale, scale, cv::INTER_AREA);
  }
  if (options_.equalize) {
    cv::Mat eq;
    cv::equalizeHist(work, eq);
    work = eq;
  }
  // Never below the cascades' 24 px window; HOG scales the image so min_side becomes its window.
  int min_side = std::max(24, (int)std::lround(min_face_fraction *
                                               std::min(work.cols, work.rows)));
  std::vector<cv::Rect> found = backend_->find(work, min_side);

  std::vector<FaceBox> faces;
  for (const cv::Rect& r : found) {
    // Back to full-resolution coordinates, clamped to the image.
    int x0 = std::clamp((int)std::lround(r.x / scale), 0, image.width - 1);
    int y0 = std::clamp((int)std::lround(r.y / scale), 0, image.height - 1);
    int x1 = std::clamp((int)std::lround((r.x + r.width) / scale), x0 + 1, image.width);
    int y1 = std::clamp((int)std::lround((r.y + r.height) / scale), y0 + 1, image.height);
    faces.push_back({x0, y0, x1 - x0, y1 - y0});
  }
  std::sort(faces.begin(), faces.end(), [](const FaceBox& a, const FaceBox& b) {
    if (a.x != b.x) return a.x < b.x;
    if (a.y != b.y) return a.y < b.y;
    return a.w < b.w;
  });
  return faces;
}

FaceBox crop_box_with_margin(const FaceBox& face, int image_width, int image_height,
                             double margin) {
  if (image_width <= 0 || image_height <= 0) throw Error("crop_box_with_margin: empty image");
  if (!(margin >= 0) || !std::isfinite(margin))
    throw Error("face margin must be a finite number >= 0, got " + std::to_string(margin));
  double cx = face.x + face.w / 2.0, cy = face.y + face.h / 2.0;
  double side = std::max(face.w, face.h) * (1.0 + 2.0 * margin);
  int s = (int)std::lround(std::min(side, (double)std::min(image_width, image_height)));
  s = std::max(s, 1);
  int x = (int)std::lround(cx - s / 2.0), y = (int)std::lround(cy - s / 2.0);
  x = std::clamp(x, 0, image_width - s);
  y = std::clamp(y, 0, image_height - s);
  return {x, y, s, s};
}

GrayImage face_image(const GrayImage& image, const FaceBox& crop, int size) {
  // resize_gray returns a same-size image unchanged, as the image-folder dataset path relies on.
  return resize_gray(crop_gray(image, crop.x, crop.y, crop.w, crop.h), size, size);
}

}  // namespace emotune
