// Image decoding and resizing shared by training (image-folder datasets) and inference (the app):
// one code path, so a face the app sees is prepared exactly as the faces the network learnt from.
// Decoding: JPEG through libjpeg-turbo, PNG through libpng, BMP and GIF through stb_image (any
// channel count), converted to 8-bit grayscale with ITU-R BT.601 luma weights; resizing:
// stb_image_resize (Debian ships stb_image_resize.h, v1). Why not stb for JPEG and PNG:
// docs/reliability.md (fuzzing found undefined behaviour in Debian's stb_image v2.27).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "base/error.h"

namespace emotune {

// Thrown (instead of a plain Error) when an image's header declares more pixels than max_pixels:
// the web server answers it with 413, every other decode failure with 400 (docs/serve.md).
struct ImageTooLargeError : Error {
  using Error::Error;
};

// The image formats the decoders below accept, by signature: PNG, JPEG, BMP, GIF. The server uses
// it to refuse a non-image upload with 415 before decoding (docs/serve.md).
bool has_image_signature(const uint8_t* bytes, size_t size);

// A box in image pixels (a face's, a crop's), in the coordinates of the decoded image.
struct FaceBox {
  int x = 0, y = 0, w = 0, h = 0;
  long long area() const { return (long long)w * h; }
  bool operator==(const FaceBox&) const = default;
};

struct GrayImage {
  int width = 0, height = 0;
  std::vector<uint8_t> pixels;  // row-major, width * height
  uint8_t at(int x, int y) const { return pixels[(size_t)y * width + x]; }
};

// Throws emotune::Error naming the file when it is missing, unreadable, not an image, truncated,
// or larger than max_pixels (checked from the header before decoding).
GrayImage load_gray_image(const std::string& path, int64_t max_pixels = 64ll << 20);
GrayImage decode_gray_image(const uint8_t* bytes, size_t size, const std::string& name_for_errors,
                            int64_t max_pixels = 64ll << 20);
GrayImage resize_gray(const GrayImage& src, int width, int height);
// Crop [x, x+w) x [y, y+h); parts outside the image are filled by replicating the border.
GrayImage crop_gray(const GrayImage& src, int x, int y, int w, int h);

// Writes an 8-bit PNG (stb_image_write, base/image_write.cpp: the one copy) through a temporary
// file renamed into place, so a killed write never leaves half a picture. channels: 1 (gray),
// 3 (RGB) or 4 (RGBA); row_bytes 0 means rows are packed. Throws emotune::Error naming the file
// when it cannot be written.
void save_png(const std::string& path, int width, int height, int channels, const uint8_t* pixels,
              int row_bytes = 0);
void save_gray_png(const GrayImage& image, const std::string& path);
// The same PNG bytes in memory (an upload answered with a picture).
std::vector<uint8_t> encode_png(int width, int height, int channels, const uint8_t* pixels, int row_bytes = 0);

}  // namespace emotune
