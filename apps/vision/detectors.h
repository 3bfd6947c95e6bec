// The detector backends behind FaceDetector (apps/vision/face.h): an OpenCV cascade (Haar or LBP)
// and dlib's HOG frontal face detector. FaceDetector does the scaling common to all (the 640 px
// downscale, boxes back to full size, sorting); a backend only finds faces in the detection image.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace emotune {

struct DetectorBackend {
  virtual ~DetectorBackend() = default;
  // Faces of at least min_side px (side) in `work`, in work's coordinates. Thread-safe.
  virtual std::vector<cv::Rect> find(const cv::Mat& work, int min_side) const = 0;
};

// Throws emotune::Error naming the path (and opencv-data) when the file is missing or is not an
// OpenCV cascade. scale_factor / min_neighbors as in cv::CascadeClassifier::detectMultiScale.
std::unique_ptr<DetectorBackend> make_cascade_backend(const std::string& path, double scale_factor,
                                                      int min_neighbors);

// dlib's get_frontal_face_detector(): 5 HOG filters (front, left, right, front rotated left and
// right), window 80x80. `work` is resized by kHogWindow / min_side (at most kHogMaxUpsample up)
// before the search, so faces down to min_side are found.
constexpr int kHogWindow = 80;
std::unique_ptr<DetectorBackend> make_hog_backend();

}  // namespace emotune
