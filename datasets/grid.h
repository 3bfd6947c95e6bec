// Pictures of what the network sees: a grid of faces (after preprocessing and augmentation,
// mapped back to 0..255) written as a PNG, for `emotune dataset stats --grid`.
#pragma once
#include <string>

#include "base/image.h"

namespace emotune {

// Tiles `count` images of side x side floats (values in [lo, hi], mapped linearly to 0..255 and
// clamped) into rows of `columns`, each pixel repeated `scale` times, `gap` pixels of mid grey
// between tiles.
GrayImage face_grid(const float* images, int count, int side, float lo, float hi, int columns,
                    int scale = 2, int gap = 2);

// Writes an 8-bit gray PNG (stb_image_write) through a temporary file renamed into place.
// Throws emotune::Error naming the file when it cannot be written.
void save_gray_png(const GrayImage& image, const std::string& path);
// Any 8-bit image, channels 1 (gray), 3 (RGB) or 4 (RGBA), rows packed; written through a
// temporary file and renamed.
void save_png(const std::string& path, int width, int height, int channels, const uint8_t* pixels);

}  // namespace emotune
