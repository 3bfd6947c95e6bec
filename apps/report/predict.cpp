// Output of `emotune predict`: the table, CSV and JSON documents (schemas in docs/music.md).
// Plain functions of the results, so the tests can check them on hand-made values.
#include "apps/report/predict.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace emotune {
namespace {

// Six decimals are plenty for a probability and keep the JSON readable (a float widened to
// double would print as 0.8500000238418579).
double round6(float p) { return std::round((double)p * 1e6) / 1e6; }

std::string percent(float p) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f%%", 100.0 * p);
  return b;
}

double round1(double v) { return std::round(v * 10) / 10; }

nlohmann::ordered_json point_json(const Point2f& p) { return {round1(p.x), round1(p.y)}; }

}  // namespace

void add_alignment_json(nlohmann::ordered_json& a, const FaceResult& f) {
  if (!f.landmarks) {
    a["angle"] = nullptr;
    a["rotation"] = 0;
    a["eyes"] = nullptr;
    a["landmarks"] = nullptr;
    return;
  }
  a["angle"] = round1(f.landmarks->angle);
  a["rotation"] = round1(f.rotation);
  a["eyes"] = {{"left", point_json(f.landmarks->left_eye)},
               {"right", point_json(f.landmarks->right_eye)}};
  a["landmarks"] = nlohmann::ordered_json::array();
  for (const Point2f& p : f.landmarks->points) a["landmarks"].push_back(point_json(p));
}

nlohmann::ordered_json box_json(const FaceBox& b) {
  return {{"x", b.x}, {"y", b.y}, {"w", b.w}, {"h", b.h}};
}

std::string explanation_caption(const FaceResult& f, const ModelInfo& info) {
  const int t = f.explanation->target;
  char b[96];
  std::snprintf(b, sizeof b, "%s %.0f%%%s", info.classes.at(t).c_str(), 100.0 * f.probabilities.at(t),
                (int)top_class(f.probabilities) == t ? "" : " (chosen class)");
  return b;
}

std::string explanation_note(const FaceResult& f) { return "Grad-CAM, layer " + f.explanation->layer; }

nlohmann::ordered_json explanation_json(const FaceResult& f, const ModelInfo& info, bool with_map) {
  const GradCam& cam = *f.explanation;
  nlohmann::ordered_json e;
  e["class"] = info.classes.at(cam.target);
  e["probability"] = round6(f.probabilities.at(cam.target));
  e["layer"] = cam.layer;
  e["file"] = f.explanation_file.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(f.explanation_file);
  if (with_map) {
    nlohmann::ordered_json values = nlohmann::ordered_json::array();
    char b[32];
    for (float v : cam.map) {  // six significant digits: a float widened to double prints noise
      std::snprintf(b, sizeof b, "%.6g", v);
      values.push_back(std::strtod(b, nullptr));
    }
    e["map"] = {{"height", cam.height}, {"width", cam.width}, {"values", values}};
  }
  return e;
}

nlohmann::ordered_json predict_json(const std::vector<ImageResult>& results,
                                    const std::string& model_path, const ModelInfo& info, bool explain_map) {
  nlohmann::ordered_json doc;
  doc["model"] = {{"path", model_path}, {"arch", info.arch}, {"classes", info.classes}};
  doc["images"] = nlohmann::ordered_json::array();
  for (const ImageResult& r : results) {
    nlohmann::ordered_json img;
    img["file"] = r.file;
    img["width"] = r.width;
    img["height"] = r.height;
    img["status"] = !r.error.empty() ? "error" : r.faces.empty() ? "no_face" : "ok";
    if (!r.error.empty()) img["error"] = r.error;
    img["faces"] = nlohmann::ordered_json::array();
    for (const FaceResult& f : r.faces) {
      nlohmann::ordered_json face;
      face["box"] = box_json(f.box);
      face["crop"] = box_json(f.crop);
      add_alignment_json(face, f);
      size_t t = top_class(f.probabilities);
      face["top"] = {{"class", info.classes[t]}, {"probability", round6(f.probabilities[t])}};
      face["unsure"] = f.unsure;
      nlohmann::ordered_json probs;
      for (size_t c = 0; c < info.classes.size(); ++c) probs[info.classes[c]] = round6(f.probabilities[c]);
      face["probabilities"] = probs;
      if (f.explanation) face["explanation"] = explanation_json(f, info, explain_map);
      img["faces"].push_back(face);
    }
    doc["images"].push_back(img);
  }
  return doc;
}

std::string predict_csv(const std::vector<ImageResult>& results, const ModelInfo& info) {
  std::ostringstream os;
  os << "file,face,x,y,w,h,top";
  for (const auto& c : info.classes) os << ',' << c;
  os << ",unsure\n";
  for (const ImageResult& r : results) {
    std::string file = r.file;
    if (file.find_first_of(",\"\n") != std::string::npos) {  // RFC 4180 quoting
      std::string q = "\"";
      for (char ch : file) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
      file = q + "\"";
    }
    for (size_t i = 0; i < r.faces.size(); ++i) {
      const FaceResult& f = r.faces[i];
      os << file << ',' << i + 1 << ',' << f.box.x << ',' << f.box.y << ',' << f.box.w << ','
         << f.box.h << ',' << info.classes[top_class(f.probabilities)];
      char b[32];
      for (float p : f.probabilities) {
        std::snprintf(b, sizeof b, ",%.6f", p);
        os << b;
      }
      os << ',' << (f.unsure ? 1 : 0) << '\n';
    }
  }
  return os.str();
}

std::string predict_table(const std::vector<ImageResult>& results, const ModelInfo& info) {
  std::ostringstream os;
  char b[64];
  for (const ImageResult& r : results) {
    if (!r.error.empty()) continue;  // reported on stderr
    os << r.file << " (" << r.width << "x" << r.height << "): ";
    if (r.faces.empty()) {
      os << "no face found\n";
      continue;
    }
    os << r.faces.size() << (r.faces.size() == 1 ? " face\n" : " faces\n");
    os << "  face  box x,y,w,h          ";
    for (const auto& c : info.classes) {
      std::snprintf(b, sizeof b, " %8.8s", c.c_str());
      os << b;
    }
    os << "  top\n";
    for (size_t i = 0; i < r.faces.size(); ++i) {
      const FaceResult& f = r.faces[i];
      std::snprintf(b, sizeof b, "  %-4zu  %-21s", i + 1,
                    (std::to_string(f.box.x) + "," + std::to_string(f.box.y) + "," +
                     std::to_string(f.box.w) + "," + std::to_string(f.box.h))
                        .c_str());
      os << b;
      for (float p : f.probabilities) {
        std::snprintf(b, sizeof b, " %8.3f", p);
        os << b;
      }
      const size_t t = top_class(f.probabilities);
      os << "  " << (f.unsure ? mood_text(f.probabilities, info.classes, true) : info.classes[t] + " " + percent(f.probabilities[t]))
         << "\n";
      if (f.explanation) {
        os << "        explained: " << info.classes.at(f.explanation->target) << " at "
           << f.explanation->layer;
        if (!f.explanation_file.empty()) os << " -> " << f.explanation_file;
        os << "\n";
      }
    }
  }
  return os.str();
}

}  // namespace emotune
