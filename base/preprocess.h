// Input preprocessing: the one definition of how 8-bit 48x48 gray faces become network inputs.
// It is stored in every checkpoint's metadata (key "preprocess", JSON) and reused by inference,
// so training and the app can never disagree.
//   input = (pixel * scale - mean) / std
// The paper network uses scale 1/255, mean 0, std 1 (inputs in [0, 1]).
#pragma once
#include <cstdint>
#include <string>

namespace emotune {

struct Preprocess {
  int size = 48;                 // square side in pixels
  float scale = 1.0f / 255.0f;
  float mean = 0.0f;
  float std = 1.0f;

  std::string to_json() const;
  // Throws emotune::Error naming the missing or bad field.
  static Preprocess from_json(const std::string& json);
  // Writes size*size floats.
  void apply(const uint8_t* pixels, float* out) const;
};

}  // namespace emotune
