// Face detection and alignment measurements behind docs/faces.md (not a Google Benchmark: each
// mode prints one Markdown table). CPU times are process CPU time (all threads, so OpenCV's
// worker threads count), the minimum of --repeat runs: the machine is shared, and the minimum of
// CPU time is the figure least disturbed by other jobs.
//   bench_faces detectors   recall / false positives on the 11 shared photos + ms per 640x480
//   bench_faces stages      per-stage ms for one 640x480 frame with one face (docs/benchmarks.md)
//   bench_faces synthetic   FER-2013 faces pasted at 24-200 px and 0-30 degrees: recall table
//   bench_faces rotation    PublicTest accuracy on faces turned 0/10/20/30 degrees, +- alignment
//   bench_faces margin      FER-2013 framing relative to the HOG box; accuracy per crop margin
// Options: --n N (PublicTest faces, default 600), --repeat R (timing runs, default 15).
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>

#include "apps/pipeline/pipeline.h"
#include "apps/runtime_env.h"
#include "apps/vision/align.h"
#include "apps/vision/face.h"
#include "datasets/dataset.h"
#include "layers/model.h"
#include "tests/face_eval.h"

using namespace emotune;

namespace {

const std::string kSource = EMOTUNE_SOURCE_DIR, kShared = EMOTUNE_SHARED_DIR;
int g_n = 600, g_repeat = 15;

double cpu_ms() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}
double min_cpu_ms(const std::function<void()>& f) {
  double best = 1e30;
  for (int r = 0; r < g_repeat; ++r) {
    double t0 = cpu_ms();
    f();
    best = std::min(best, cpu_ms() - t0);
  }
  return best;
}

cv::Mat header(const GrayImage& g) {
  return cv::Mat(g.height, g.width, CV_8UC1, const_cast<uint8_t*>(g.pixels.data()));
}
GrayImage from_mat(const cv::Mat& m) {
  GrayImage g;
  g.width = m.cols;
  g.height = m.rows;
  g.pixels.assign(m.datastart, m.dataend);
  return g;
}
// examples/face.jpg (600x600, one face) as a 640x480 frame: scaled to 480 high, grey sides.
GrayImage frame_640x480() {
  GrayImage image = load_gray_image(kSource + "/examples/face.jpg");
  cv::Mat face = header(image), small;
  cv::resize(face, small, cv::Size(480, 480), 0, 0, cv::INTER_AREA);
  cv::Mat frame(480, 640, CV_8UC1, cv::Scalar(128));
  small.copyTo(frame(cv::Rect(80, 0, 480, 480)));
  return from_mat(frame);
}

Dataset public_test() {
  LoadOptions o;
  o.splits = {Split::public_test};
  Dataset d = load_dataset(kShared + "/data/fer2013/fer2013-trainval.u8.xz", o);
  std::printf("PublicTest: %zu faces, using the first %d\n", d.size(), std::min<int>(g_n, d.size()));
  return d;
}

// A FER-2013 face scaled to `side` px, centred at (cx, cy) of a w x h canvas filled by repeating its
// border, the canvas turned by `deg` (counter-clockwise) about the face centre.
GrayImage paste_face(const uint8_t* pixels, int side, int w, int h, double deg) {
  cv::Mat face(48, 48, CV_8UC1, const_cast<uint8_t*>(pixels)), big;
  cv::resize(face, big, cv::Size(side, side), 0, 0, cv::INTER_CUBIC);
  int x = (w - side) / 2, y = (h - side) / 2;
  cv::Mat canvas;
  cv::copyMakeBorder(big, canvas, y, h - side - y, x, w - side - x, cv::BORDER_REPLICATE);
  if (deg != 0) {
    cv::Mat turned;
    cv::warpAffine(canvas, turned, cv::getRotationMatrix2D(cv::Point2f(w / 2.f, h / 2.f), deg, 1),
                   canvas.size(), cv::INTER_LINEAR, cv::BORDER_REPLICATE);
    canvas = turned;
  }
  return from_mat(canvas);
}

int detectors() {
  auto truth = testing::read_face_boxes(kSource + "/tests/data/faces_boxes.json");
  GrayImage frame = frame_640x480();
  std::printf("| detector | faces found (of 33) | false positives | ms per 640x480 frame |\n|---|---|---|---|\n");
  for (DetectorKind kind : {DetectorKind::hog, DetectorKind::haar, DetectorKind::lbp}) {
    FaceDetector d(kind);
    int found = 0, total = 0, fp = 0;
    for (const auto& [name, ann] : truth) {
      auto s = testing::score_detections(ann, d.detect(load_gray_image(kShared + "/data/photos/" + name)));
      found += s.found, total += s.total, fp += s.false_positives;
    }
    double ms = min_cpu_ms([&] { d.detect(frame); });
    std::printf("| %s | %d / %d | %d | %.1f |\n", detector_name(kind), found, total, fp, ms);
  }
  return 0;
}

int stages() {
  GrayImage frame = frame_640x480();
  FaceAligner aligner;
  std::printf("| stage (640x480 frame, one face) | CPU ms (min of %d) |\n|---|---|\n", g_repeat);
  for (double frac : {0.1, 0.15, 0.3}) {
    FaceDetectorOptions o = default_detector_options(DetectorKind::hog);
    o.min_face_fraction = frac;
    FaceDetector d(DetectorKind::hog, o);
    size_t n = 0;
    double ms = min_cpu_ms([&] { n = d.detect(frame).size(); });
    std::printf("| detect, hog, faces >= %.0f%% of the height (%d px) | %.1f (%zu face) |\n",
                frac * 100, (int)std::lround(frac * 480), ms, n);
  }
  FaceDetector d;
  auto boxes = d.detect(frame);
  if (boxes.size() != 1) return std::printf("expected one face\n"), 1;
  FaceLandmarks l;
  std::printf("| align: 68 landmarks | %.2f |\n", min_cpu_ms([&] { l = aligner.locate(frame, boxes[0]); }));
  FaceBox crop = crop_box_with_margin(boxes[0], frame.width, frame.height, kDefaultFaceMargin);
  std::printf("| rotated crop to 48x48 (%.1f deg) | %.2f |\n", l.angle,
              min_cpu_ms([&] { rotated_face_image(frame, crop, 10.0, 48); }));
  std::printf("| load landmark model (once) | %.0f |\n", min_cpu_ms([&] { FaceAligner a; }));
  return 0;
}

int synthetic() {
  Dataset d = public_test();
  FaceDetector det;
  int n = std::min<int>(g_n, d.size());
  const std::vector<int> sizes = {24, 36, 48, 64, 100, 150, 200};
  const std::vector<double> angles = {0, 10, 20, 30};
  std::printf("\nrecall of %s: FER-2013 PublicTest faces (n = %d per cell) pasted at SIZE px into a "
              "640x480 frame and turned by ANGLE; a hit is a box whose centre is within SIZE/4 of "
              "the face centre\n\n| size \\ angle |", detector_name(det.kind()), n);
  for (double a : angles) std::printf(" %.0f |", a);
  std::printf("\n|---|");
  for (size_t i = 0; i < angles.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (int s : sizes) {
    std::printf("| %d px |", s);
    for (double a : angles) {
      int hits = 0;
      for (int i = 0; i < n; ++i) {
        GrayImage img = paste_face(d.image(i), s, 640, 480, a);
        for (const FaceBox& b : det.detect(img))
          if (std::hypot(b.x + b.w / 2.0 - 320, b.y + b.h / 2.0 - 240) <= s / 4.0) {
            ++hits;
            break;
          }
      }
      std::printf(" %.0f%% |", 100.0 * hits / n);
    }
    std::printf("\n");
    std::fflush(stdout);
  }
  return 0;
}

// Accuracy of the shipped model on crops made by `crop_fn` from each PublicTest face.
double accuracy(const LoadedModel& m, const Dataset& d, int n,
                const std::function<GrayImage(int)>& crop_fn) {
  int correct = 0;
  const int size = m.info.preprocess.size;
  std::vector<float> x((size_t)size * size);
  for (int i = 0; i < n; ++i) {
    GrayImage g = crop_fn(i);
    m.info.preprocess.apply(g.pixels.data(), x.data());
    auto p = predict_probabilities(m, x.data(), 1);
    correct += (int)top_class(p[0]) == d.labels[i];
  }
  return 100.0 * correct / n;
}

int rotation(const std::string& model_path) {
  Dataset d = public_test();
  int n = std::min<int>(g_n, d.size());
  LoadedModel m = load_model(model_path);
  FaceAligner aligner;
  FaceDetector det;
  // Each face at 192 px in a 576x576 canvas, turned; the crop is the face's own 192 px square
  // (what a perfect detector plus FER framing gives), so only the tilt differs between columns.
  const int side = 192, canvas = 576;
  const FaceBox crop{(canvas - side) / 2, (canvas - side) / 2, side, side};
  std::printf("\n%s on PublicTest (first %d), faces turned by ANGLE; landmarks on the HOG box "
              "(or the central 70%% when HOG misses)\n\n| angle | no alignment | landmark alignment "
              "| known angle (upper bound) | mean abs angle error |\n|---|---|---|---|---|\n",
              model_path.c_str(), n);
  for (double a : {0.0, 10.0, 20.0, 30.0}) {
    std::vector<GrayImage> imgs(n);
    for (int i = 0; i < n; ++i) imgs[i] = paste_face(d.image(i), side, canvas, canvas, a);
    double err = 0;
    double plain = accuracy(m, d, n, [&](int i) { return face_image(imgs[i], crop, 48); });
    double aligned = accuracy(m, d, n, [&](int i) {
      auto boxes = det.detect(imgs[i]);
      FaceBox box{crop.x + side * 15 / 100, crop.y + side * 15 / 100, side * 70 / 100, side * 70 / 100};
      for (const FaceBox& b : boxes)
        if (testing::iou(b, box) > 0.3) box = b;
      FaceLandmarks l = aligner.locate(imgs[i], box);
      // The image was turned counter-clockwise by a: the eye line now tilts by -a.
      err += std::abs(l.angle + a);
      double rot = std::abs(l.angle) >= kMinAlignAngle ? l.angle : 0.0;
      return rotated_face_image(imgs[i], crop, rot, 48);
    });
    double known = accuracy(m, d, n, [&](int i) { return rotated_face_image(imgs[i], crop, -a, 48); });
    std::printf("| %.0f | %.1f%% | %.1f%% | %.1f%% | %.1f deg |\n", a, plain, aligned, known, err / n);
    std::fflush(stdout);
  }
  return 0;
}

int margin(const std::string& model_path) {
  Dataset d = public_test();
  int n = std::min<int>(g_n, d.size());
  LoadedModel m = load_model(model_path);
  FaceDetector det;
  const int side = 192, canvas = 576, c0 = (canvas - side) / 2;
  std::vector<GrayImage> imgs(n);
  std::vector<FaceBox> boxes(n);
  std::vector<double> ratio, dx, dy;
  int found = 0;
  for (int i = 0; i < n; ++i) {
    imgs[i] = paste_face(d.image(i), side, canvas, canvas, 0);
    auto b = det.detect(imgs[i]);
    if (b.empty()) continue;
    boxes[found] = b[0];
    imgs[found] = imgs[i];
    d.labels[found] = d.labels[i];
    ++found;
    double s = std::max(b[0].w, b[0].h);
    ratio.push_back(side / s);
    dx.push_back((b[0].x + b[0].w / 2.0 - canvas / 2.0) / s);
    dy.push_back((b[0].y + b[0].h / 2.0 - canvas / 2.0) / s);
  }
  auto median = [](std::vector<double> v) {
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    return v[v.size() / 2];
  };
  double r = median(ratio);
  std::printf("\nHOG found a face in %d of %d PublicTest faces (192 px). FER crop side / HOG box "
              "side: median %.3f, i.e. margin %.3f per side; box centre offset from the FER centre "
              "(in box sides): x %.3f, y %.3f\n\n| margin | accuracy on the HOG-box crop |\n|---|---|\n",
              found, n, r, (r - 1) / 2, median(dx), median(dy));
  (void)c0;
  for (double mg : {0.0, 0.1, 0.2, 0.25, 0.3, 0.4}) {
    double acc = accuracy(m, d, found, [&](int i) {
      return face_image(imgs[i], crop_box_with_margin(boxes[i], canvas, canvas, mg), 48);
    });
    std::printf("| %.2f | %.1f%% |\n", mg, acc);
    std::fflush(stdout);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_faces", argv, /*select_cpu_path=*/false);
  std::string mode = argc > 1 ? argv[1] : "";
  std::string model = kSource + "/models/vgg.safetensors";
  for (int i = 2; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--n")) g_n = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--repeat")) g_repeat = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--model")) model = argv[i + 1];
  }
  try {
    if (mode == "detectors") return detectors();
    if (mode == "stages") return stages();
    if (mode == "synthetic") return synthetic();
    if (mode == "rotation") return rotation(model);
    if (mode == "margin") return margin(model);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_faces: %s\n", e.what());
    return 1;
  }
  std::fprintf(stderr, "usage: bench_faces detectors|stages|synthetic|rotation|margin [--n N] "
                       "[--repeat R] [--model PATH]\n");
  return 2;
}
