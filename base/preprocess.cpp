#include "base/preprocess.h"

#include <cmath>
#include <nlohmann/json.hpp>

#include "base/error.h"

namespace emotune {

namespace {

double number_field(const nlohmann::json& j, const char* key) {
  if (!j.contains(key)) throw Error(std::string("preprocess: missing field '") + key + "'");
  const nlohmann::json& v = j.at(key);
  if (!v.is_number())
    throw Error(std::string("preprocess: field '") + key + "' must be a number, got " + v.dump());
  double d = v.get<double>();
  if (!std::isfinite(d)) throw Error(std::string("preprocess: field '") + key + "' is not finite");
  return d;
}

}  // namespace

std::string Preprocess::to_json() const {
  // Floats are widened to double exactly and nlohmann prints the shortest round-trip form, so
  // from_json(to_json()) gives back the same bits.
  nlohmann::json j = {{"size", size},
                      {"scale", (double)scale},
                      {"mean", (double)mean},
                      {"std", (double)std}};
  return j.dump();
}

Preprocess Preprocess::from_json(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    throw Error(std::string("preprocess: not valid JSON (") + e.what() + ")");
  }
  if (!j.is_object()) throw Error("preprocess: expected a JSON object, got " + j.dump());
  Preprocess p;
  double size = number_field(j, "size");
  if (size != std::floor(size) || size < 1 || size > 4096)
    throw Error("preprocess: field 'size' must be an integer 1..4096, got " + j.at("size").dump());
  p.size = (int)size;
  p.scale = (float)number_field(j, "scale");
  p.mean = (float)number_field(j, "mean");
  p.std = (float)number_field(j, "std");
  if (p.scale == 0.0f) throw Error("preprocess: field 'scale' must not be 0");
  if (!(p.std > 0.0f)) throw Error("preprocess: field 'std' must be > 0, got " + j.at("std").dump());
  return p;
}

void Preprocess::apply(const uint8_t* pixels, float* out) const {
  // The exact formula (no precomputed reciprocal): training and inference call this same
  // function, and a value that is exactly representable stays exact (e.g. 255 * (1/255) / 1).
  const int n = size * size;
  for (int i = 0; i < n; ++i) out[i] = ((float)pixels[i] * scale - mean) / std;
}

}  // namespace emotune
