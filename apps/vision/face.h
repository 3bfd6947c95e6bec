// Face detection and face crops for the app.
//
// Three detectors, chosen by --detector (docs/faces.md has the measurements behind the default):
//   hog  (default) dlib's HOG frontal face detector (libdlib-dev; its model is compiled in).
//        33 of 33 faces of the 11 shared photos, 0 false positives, and faster than Haar.
//   haar OpenCV's Viola-Jones cascade haarcascade_frontalface_default.xml (opencv-data).
//   lbp  OpenCV's LBP cascade lbpcascade_frontalface.xml (opencv-data).
// All are deterministic: the same image and options give the same boxes on every run and machine.
// The image is decoded by load_gray_image (base/image.h), never by cv::imread, so training
// and inference see identical pixels; OpenCV only reads a cv::Mat header over those pixels.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "base/image.h"

namespace emotune {

enum class DetectorKind { hog, haar, lbp };
constexpr DetectorKind kDefaultDetector = DetectorKind::hog;
// "hog", "haar", "lbp"; anything else is an emotune::Error listing the choices.
DetectorKind parse_detector(const std::string& name);
const char* detector_name(DetectorKind kind);

// The defaults (default_detector_options(haar)), and why. They were chosen by a sweep over the 11 photos in ../shared/data/photos
// (scale 1.1/1.2, neighbours 5/6/8, min face 4-8%, detection side 640/800/1024, with and without
// equalisation; docs/music.md has the table): this setting is the fastest one with no false
// positive on any photo, all faces of the fr_* photos and every annotated face of the two dlib
// group photos with frontal faces (6 of 6, 7 of 7). Laughing or tilted faces are still missed;
// that is a limit of the frontal Haar cascade, not of the settings.
struct FaceDetectorOptions {
  // Pyramid step 1.1 (OpenCV's default): 1.2 and the 1.3 many demos use miss faces that fall
  // between two scales (the sweep lost 1-2 faces per group photo at 1.2).
  double scale_factor = 1.1;
  // Overlapping raw detections needed to accept a face; 5 let false positives through on
  // clothing and curtains in 4 of the 11 photos, 6 none, 8 lost true faces.
  int min_neighbors = 6;
  // Smallest face side: this fraction of the shorter side of the (downscaled) detection image,
  // never below the cascade's 24 px window. Smaller faces carry too few pixels for a 48x48
  // expression crop, and skipping those scales makes detection ~25% faster.
  double min_face_fraction = 0.06;
  // Images larger than this (longer side, px) are detected on an INTER_AREA downscale and the
  // boxes scaled back: Haar cost grows with pixel count, and at 640 px a face that fills 6% of a
  // phone photo is still > 24 px. Measured: ~50 ms per photo instead of 100-300 ms at 1024.
  int max_detect_side = 640;
  // Histogram equalisation before detection (OpenCV's tutorial does it). Off: in the sweep it
  // added false positives in bright backgrounds and found no extra face. Only the detector
  // would see it; crops always use the original pixels.
  bool equalize = false;
};

// The options each detector ships with. hog: min_face_fraction 0.1 (HOG's window is 80 px, so
// the detection image is scaled by 80 / (0.1 * shorter side), at most 2x: 37 px faces of a 500x375
// photo are found, a 640x480 frame costs one 2x pass less than Haar's 24 px search); no neighbour
// count. lbp: lbpcascade_frontalface.xml, min_neighbors 4: of the two LBP cascades and 3-6
// neighbours, the most faces (26 of 33) with no false positive; the "improved" cascade found 9.
FaceDetectorOptions default_detector_options(DetectorKind kind);
// HOG never upsamples more than this: each 2x quadruples the cost.
constexpr double kHogMaxUpsample = 2.0;

// A listener's own photo (selfie, portrait) shows their face at well over 15% of the shorter side.
constexpr double kListenerFaceFraction = 0.15;

// Path of the cascade file: $EMOTUNE_HAAR_DIR (environment) overrides the build-time
// EMOTUNE_HAAR_DIR; the file is haarcascade_frontalface_default.xml in that folder (haar) or
// ../lbpcascades/lbpcascade_frontalface.xml beside it (lbp).
std::string default_cascade_path(DetectorKind kind = DetectorKind::haar);

// The detector behind FaceDetector (apps/vision/detectors.h): boxes in the coordinates of the
// (scaled) detection image it is given.
struct DetectorBackend;

class FaceDetector {
 public:
  // The shipped detector of that kind with its default options.
  explicit FaceDetector(DetectorKind kind = kDefaultDetector);
  FaceDetector(DetectorKind kind, FaceDetectorOptions options);
  // Any OpenCV cascade file (Haar or LBP). Throws emotune::Error naming the path (and
  // `apt-get install opencv-data`) when the cascade is missing or does not load.
  explicit FaceDetector(const std::string& cascade_path, FaceDetectorOptions options = {});
  ~FaceDetector();
  FaceDetector(const FaceDetector&) = delete;
  FaceDetector& operator=(const FaceDetector&) = delete;

  // Not copyable; movable so a pipeline can pick its detector at run time.
  FaceDetector(FaceDetector&&) noexcept;
  FaceDetector& operator=(FaceDetector&&) noexcept;

  // Faces sorted left to right (x, then y, then size) so the order is stable and readable.
  std::vector<FaceBox> detect(const GrayImage& image) const;
  // For one listener (recommend): faces of at least kListenerFaceFraction of the shorter side
  // first, and only when there is none the full search. Skipping the small scales makes the
  // search ~3x cheaper (16 vs 47 ms on examples/face.jpg, bench_inference); the faces it skips
  // are smaller than the one a recommendation is read from whenever a listener-sized face exists.
  // hog: the full search, then the listener-sized faces (face.cpp says why); a video loop that
  // needs speed sets FaceDetectorOptions::min_face_fraction instead (docs/benchmarks.md).
  std::vector<FaceBox> detect_listener(const GrayImage& image) const;
  const FaceDetectorOptions& options() const { return options_; }
  DetectorKind kind() const { return kind_; }

 private:
  std::vector<FaceBox> detect_min(const GrayImage& image, double min_face_fraction) const;
  std::unique_ptr<DetectorBackend> backend_;
  FaceDetectorOptions options_;
  DetectorKind kind_ = kDefaultDetector;
};

// The square crop for a face: side = max(w, h) * (1 + 2 * margin), centred on the face, shrunk
// to the shorter image side if needed and shifted to lie inside the image (clamped at the
// borders, so no invented pixels and no aspect distortion when it is resized to a square).
// margin >= 0 (0.1 = 10% of the face side on each side).
FaceBox crop_box_with_margin(const FaceBox& face, int image_width, int image_height, double margin);

// crop -> resize to size x size with the shared resize_gray: what the network sees for a face.
GrayImage face_image(const GrayImage& image, const FaceBox& crop, int size);

}  // namespace emotune
