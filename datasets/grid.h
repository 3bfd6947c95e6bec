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
// (Written as PNG with save_gray_png, base/image.h.)

}  // namespace emotune
