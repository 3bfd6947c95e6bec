#include "apps/vision/detectors.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>

#include <dlib/image_processing/frontal_face_detector.h>
#include <dlib/opencv/cv_image.h>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

#include "apps/vision/face.h"
#include "base/error.h"

namespace emotune {
namespace {

class CascadeBackend : public DetectorBackend {
 public:
  CascadeBackend(const std::string& path, double scale_factor, int min_neighbors)
      : scale_factor_(scale_factor), min_neighbors_(min_neighbors) {
    std::error_code ec;
    if (!std::filesystem::is_regular_file(path, ec))
      throw Error("face detector: cascade file " + path +
                  " not found (install Debian's opencv-data: apt-get install opencv-data, or set "
                  "EMOTUNE_HAAR_DIR to the folder holding haarcascade_frontalface_default.xml)");
    bool ok = false;
    try {
      ok = cascade_.load(path);
    } catch (const cv::Exception&) {
      ok = false;
    }
    if (!ok || cascade_.empty())
      throw Error("face detector: " + path + " is not a valid OpenCV cascade");
  }
  std::vector<cv::Rect> find(const cv::Mat& work, int min_side) const override {
    std::vector<cv::Rect> found;
    if (work.cols < min_side || work.rows < min_side) return found;
    // detectMultiScale is const in OpenCV 4 and safe to call from several threads.
    cascade_.detectMultiScale(work, found, scale_factor_, min_neighbors_, cv::CASCADE_SCALE_IMAGE,
                              cv::Size(min_side, min_side));
    return found;
  }

 private:
  mutable cv::CascadeClassifier cascade_;
  double scale_factor_;
  int min_neighbors_;
};

class HogBackend : public DetectorBackend {
 public:
  HogBackend() : detector_(dlib::get_frontal_face_detector()) {}
  std::vector<cv::Rect> find(const cv::Mat& work, int min_side) const override {
    double up = std::min(kHogMaxUpsample, (double)kHogWindow / std::max(min_side, 1));
    cv::Mat scaled = work;
    if (std::abs(up - 1.0) > 1e-3)
      cv::resize(work, scaled, cv::Size(), up, up, up > 1 ? cv::INTER_LINEAR : cv::INTER_AREA);
    std::vector<cv::Rect> found;
    if (scaled.cols < kHogWindow || scaled.rows < kHogWindow) return found;
    std::vector<dlib::rectangle> rects;
    {
      // dlib's object_detector::operator() is not const (it keeps scratch buffers): one at a time.
      std::lock_guard<std::mutex> lock(mutex_);
      rects = detector_(dlib::cv_image<unsigned char>(scaled));
    }
    for (const dlib::rectangle& r : rects) {
      int x = (int)std::lround(r.left() / up), y = (int)std::lround(r.top() / up);
      int w = (int)std::lround(r.width() / up), h = (int)std::lround(r.height() / up);
      cv::Rect box = cv::Rect(x, y, w, h) & cv::Rect(0, 0, work.cols, work.rows);
      if (box.width > 0 && box.height > 0) found.push_back(box);
    }
    return found;
  }

 private:
  mutable dlib::frontal_face_detector detector_;
  mutable std::mutex mutex_;
};

}  // namespace

std::unique_ptr<DetectorBackend> make_cascade_backend(const std::string& path, double scale_factor,
                                                      int min_neighbors) {
  return std::make_unique<CascadeBackend>(path, scale_factor, min_neighbors);
}

std::unique_ptr<DetectorBackend> make_hog_backend() { return std::make_unique<HogBackend>(); }

}  // namespace emotune
