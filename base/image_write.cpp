// PNG writing (see image.h): the one translation unit that compiles stb_image_write, for every
// picture emotune writes (training curves, face grids, watch plots, explanations).
#include <cstdio>

#include "base/error.h"
#include "base/image.h"

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#include <stb_image_write.h>
#pragma GCC diagnostic pop

namespace emotune {

void save_png(const std::string& path, int width, int height, int channels, const uint8_t* pixels,
              int row_bytes) {
  if (width <= 0 || height <= 0) throw Error(path + ": cannot write an empty image");
  if (channels != 1 && channels != 3 && channels != 4)
    throw Error(path + ": cannot write a PNG of " + std::to_string(channels) + " channels");
  const std::string tmp = path + ".part";
  if (!stbi_write_png(tmp.c_str(), width, height, channels, pixels, row_bytes > 0 ? row_bytes : width * channels)) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": cannot write PNG (rename failed)");
  }
}

std::vector<uint8_t> encode_png(int width, int height, int channels, const uint8_t* pixels, int row_bytes) {
  if (width <= 0 || height <= 0) throw Error("cannot encode an empty image as PNG");
  if (channels != 1 && channels != 3 && channels != 4)
    throw Error("cannot encode a PNG of " + std::to_string(channels) + " channels");
  std::vector<uint8_t> out;
  auto append = [](void* context, void* data, int size) {
    auto* v = static_cast<std::vector<uint8_t>*>(context);
    v->insert(v->end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + size);
  };
  if (!stbi_write_png_to_func(append, &out, width, height, channels, pixels,
                              row_bytes > 0 ? row_bytes : width * channels))
    throw Error("PNG encoding failed");
  return out;
}

void save_gray_png(const GrayImage& image, const std::string& path) {
  save_png(path, image.width, image.height, 1, image.pixels.data());
}

}  // namespace emotune
