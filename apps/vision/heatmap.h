// Explanation overlays: a coarse heat map (a Grad-CAM map, layers/gradcam.h, handed over as plain
// numbers so that vision needs no network code) upsampled, colour-mapped and blended over a face.
// One drawing for every front end: the PNG of `predict --explain`, the overlay the web page shows,
// and the boxes of `watch --explain`.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "base/image.h"

namespace emotune {

struct HeatMap {
  int height = 0, width = 0;
  std::vector<float> values;  // height * width, row-major, >= 0 (any scale: drawn relative to max)
  float max() const;
};

// Blends `heat` over an 8-bit BGR image (`width` x `height`, rows `row_bytes` apart) inside
// `where` (clipped to the image): the map is resized bilinearly to the box, divided by its
// maximum, colour-mapped (JET: blue low, red high) and mixed in with weight `alpha` * value, so
// that where the map is zero the face shows unchanged. An all-zero map changes nothing.
void blend_heat(uint8_t* bgr, int width, int height, size_t row_bytes, FaceBox where, const HeatMap& heat,
                double alpha = 0.55);

// The picture of one explained face, written as PNG (base/image.h save_png: atomic): the face as
// the network saw it (`face`, any size, drawn at `side` x `side`), the heat blended over it, a
// colour bar (0 to the map's maximum) on the right, `caption` (e.g. "happy 96%") above and `note`
// (e.g. "Grad-CAM, layer relu7") below. An all-zero map is drawn without colour and the note says
// "no positive evidence for this class". Throws naming the path.
void write_explanation_png(const std::string& path, const GrayImage& face, const HeatMap& heat,
                           const std::string& caption, const std::string& note, int side = 240);
// The same picture PNG-encoded in memory (the web API's data URL).
std::vector<uint8_t> encode_explanation_png(const GrayImage& face, const HeatMap& heat,
                                            const std::string& caption, const std::string& note,
                                            int side = 240);

}  // namespace emotune
