#include "datasets/grid.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/error.h"

namespace emotune {

GrayImage face_grid(const float* images, int count, int side, float lo, float hi, int columns,
                    int scale, int gap) {
  if (count < 1 || side < 1 || columns < 1 || scale < 1 || gap < 0)
    throw Error("face grid: nothing to draw (count " + std::to_string(count) + ")");
  const int rows = (count + columns - 1) / columns;
  const int cols = std::min(columns, count);
  const int tile = side * scale;
  GrayImage g;
  g.width = cols * tile + (cols + 1) * gap;
  g.height = rows * tile + (rows + 1) * gap;
  g.pixels.assign((size_t)g.width * g.height, 128);
  const float range = hi != lo ? hi - lo : 1.0f;
  for (int k = 0; k < count; ++k) {
    const float* img = images + (size_t)k * side * side;
    const int x0 = gap + (k % columns) * (tile + gap), y0 = gap + (k / columns) * (tile + gap);
    for (int y = 0; y < tile; ++y)
      for (int x = 0; x < tile; ++x) {
        float v = (img[(y / scale) * side + x / scale] - lo) / range * 255.0f;
        g.pixels[(size_t)(y0 + y) * g.width + x0 + x] =
            (uint8_t)std::clamp(std::lround(v), 0l, 255l);
      }
  }
  return g;
}

}  // namespace emotune
