// Scoring face detections against box annotations (tests/data/faces_boxes.json), shared by
// tests/test_app_faces.cpp and bench/faces.cpp: greedy one-to-one matching at IoU >= 0.4 (boxes of
// different detectors frame a face differently: dlib's HOG box is the face from brows to chin, the
// Haar box adds forehead and jaw; 0.4 accepts both, 0.5 would reject correct Haar boxes on small
// faces). Detections on an "ignore" box count neither way.
#pragma once
#include <algorithm>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/vision/face.h"
#include "base/error.h"

namespace emotune::testing {

struct AnnotatedImage {
  std::vector<FaceBox> faces, ignore;
};

inline std::map<std::string, AnnotatedImage> read_face_boxes(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw Error(path + ": cannot open");
  nlohmann::json doc = nlohmann::json::parse(in);
  std::map<std::string, AnnotatedImage> out;
  auto boxes = [](const nlohmann::json& a) {
    std::vector<FaceBox> v;
    for (const auto& b : a) v.push_back({b.at(0).get<int>(), b.at(1).get<int>(), b.at(2).get<int>(), b.at(3).get<int>()});
    return v;
  };
  for (const auto& [name, img] : doc.at("images").items()) {
    out[name].faces = boxes(img.at("faces"));
    if (img.contains("ignore")) out[name].ignore = boxes(img.at("ignore"));
  }
  return out;
}

inline double iou(const FaceBox& a, const FaceBox& b) {
  double x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  double x1 = std::min(a.x + a.w, b.x + b.w), y1 = std::min(a.y + a.h, b.y + b.h);
  double inter = std::max(0.0, x1 - x0) * std::max(0.0, y1 - y0);
  double uni = (double)a.area() + (double)b.area() - inter;
  return uni > 0 ? inter / uni : 0;
}

constexpr double kMatchIoU = 0.4;

struct DetectionScore {
  int found = 0, total = 0, false_positives = 0;
  std::vector<FaceBox> missed, wrong;
};

// Highest-IoU pairs first, each annotated face matched at most once.
inline DetectionScore score_detections(const AnnotatedImage& truth,
                                       const std::vector<FaceBox>& detections) {
  DetectionScore s;
  s.total = (int)truth.faces.size();
  std::vector<bool> used(truth.faces.size(), false), hit(detections.size(), false);
  struct Pair { double iou; size_t t, d; };
  std::vector<Pair> pairs;
  for (size_t t = 0; t < truth.faces.size(); ++t)
    for (size_t d = 0; d < detections.size(); ++d) {
      double v = iou(truth.faces[t], detections[d]);
      if (v >= kMatchIoU) pairs.push_back({v, t, d});
    }
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) { return a.iou > b.iou; });
  for (const Pair& p : pairs)
    if (!used[p.t] && !hit[p.d]) used[p.t] = hit[p.d] = true, ++s.found;
  for (size_t t = 0; t < truth.faces.size(); ++t)
    if (!used[t]) s.missed.push_back(truth.faces[t]);
  for (size_t d = 0; d < detections.size(); ++d) {
    if (hit[d]) continue;
    bool ignored = std::any_of(truth.ignore.begin(), truth.ignore.end(),
                               [&](const FaceBox& g) { return iou(g, detections[d]) >= kMatchIoU; });
    if (!ignored) s.wrong.push_back(detections[d]), ++s.false_positives;
  }
  return s;
}

}  // namespace emotune::testing
