#include "datasets/grid.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "base/error.h"

// stb_image_write is compiled here with static linkage, so another file may include its own
// copy without duplicate symbols.
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

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

void save_gray_png(const GrayImage& image, const std::string& path) {
  save_png(path, image.width, image.height, 1, image.pixels.data());
}

void save_png(const std::string& path, int width, int height, int channels, const uint8_t* pixels) {
  if (width <= 0 || height <= 0) throw Error(path + ": cannot write an empty image");
  std::string tmp = path + ".part";
  if (!stbi_write_png(tmp.c_str(), width, height, channels, pixels, width * channels)) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG (rename failed)");
  }
}

}  // namespace emotune
