// Image decoding and resizing (see image.h). The one translation unit that compiles the stb
// implementations: stb_image (decode) and stb_image_resize v1 (Debian's libstb-dev ships v0.97 of
// stb_image_resize.h and no stb_image_resize2.h, so v1 it is; its default filters are Mitchell for
// downsampling and Catmull-Rom for upsampling).
//
// Hardening: only PNG, JPEG, BMP and GIF are compiled in (STBI_ONLY_*), the format is recognised by
// its magic bytes (stb's TGA probe would otherwise accept random bytes), the dimensions are read
// from the header and refused above max_pixels before any pixel memory is allocated, and a JPEG
// without an end-of-image marker after its last scan is refused as truncated (stb would silently
// fill the missing part with grey).
#include "apps/vision/image.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>

#include "engine/error.h"

#define STBI_ONLY_PNG
#define STBI_ONLY_JPEG
#define STBI_ONLY_BMP
#define STBI_ONLY_GIF
#define STBI_NO_STDIO
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_RESIZE_IMPLEMENTATION
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#include <stb_image.h>
#include <stb_image_resize.h>
#pragma GCC diagnostic pop

namespace emotune {

namespace {

enum class Format { unknown, png, jpeg, bmp, gif };

Format sniff_format(const uint8_t* b, size_t n) {
  if (n >= 8 && std::memcmp(b, "\x89PNG\r\n\x1a\n", 8) == 0) return Format::png;
  if (n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF) return Format::jpeg;
  if (n >= 2 && b[0] == 'B' && b[1] == 'M') return Format::bmp;
  if (n >= 6 && (std::memcmp(b, "GIF87a", 6) == 0 || std::memcmp(b, "GIF89a", 6) == 0))
    return Format::gif;
  return Format::unknown;
}

// Inside entropy-coded JPEG data every 0xFF byte is followed by 0x00 or a restart marker, so the
// last FF DA (start of scan) really is the last scan header, and a complete file has FF D9 (end of
// image) after it. A file cut anywhere after the headers fails this test.
bool jpeg_has_end_marker(const uint8_t* b, size_t n) {
  size_t last_sos = 0;
  bool found_sos = false;
  for (size_t i = 0; i + 1 < n; ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xDA) last_sos = i, found_sos = true;
  if (!found_sos) return false;
  for (size_t i = last_sos + 2; i + 1 < n; ++i)
    if (b[i] == 0xFF && b[i + 1] == 0xD9) return true;
  return false;
}

struct StbFree {
  void operator()(stbi_uc* p) const { stbi_image_free(p); }
};

}  // namespace

GrayImage decode_gray_image(const uint8_t* bytes, size_t size, const std::string& name,
                            int64_t max_pixels) {
  if (size == 0) throw Error(name + ": empty file, not an image");
  if (size > (size_t)INT_MAX) throw Error(name + ": file too large to decode (over 2 GiB)");
  Format format = sniff_format(bytes, size);
  if (format == Format::unknown)
    throw Error(name + ": not an image (no PNG, JPEG, BMP or GIF signature)");
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, (int)size, &w, &h, &comp))
    throw Error(name + ": unreadable image header (" + stbi_failure_reason() + ")");
  if (w <= 0 || h <= 0) throw Error(name + ": image has no pixels");
  if ((int64_t)w * h > max_pixels)
    throw Error(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                ", more than the limit of " + std::to_string(max_pixels) + " pixels");
  if (format == Format::jpeg && !jpeg_has_end_marker(bytes, size))
    throw Error(name + ": truncated JPEG (no end-of-image marker after the last scan)");

  // Decode with the file's own channel count and convert here, so the grey weights are ours
  // (BT.601) and not stb's approximation. 16-bit PNGs come back as 8-bit (stb scales them).
  int channels = 0;
  std::unique_ptr<stbi_uc, StbFree> data(
      stbi_load_from_memory(bytes, (int)size, &w, &h, &channels, 0));
  if (!data) throw Error(name + ": cannot decode image (" + stbi_failure_reason() + ")");
  GrayImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize((size_t)w * h);
  const stbi_uc* src = data.get();
  size_t n = (size_t)w * h;
  if (channels == 1 || channels == 2) {
    // Gray or gray+alpha: alpha is ignored (faces are not expected to be transparent).
    for (size_t i = 0; i < n; ++i) img.pixels[i] = src[i * channels];
  } else {
    // ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B in 16-bit fixed point (weights sum to 65536),
    // rounded to nearest. Alpha, if any, is ignored.
    for (size_t i = 0; i < n; ++i) {
      const stbi_uc* p = src + i * channels;
      uint32_t y = 19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u;
      img.pixels[i] = (uint8_t)(y >> 16);
    }
  }
  return img;
}

GrayImage load_gray_image(const std::string& path, int64_t max_pixels) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) throw Error(path + ": cannot open image (" + std::strerror(errno) + ")");
  std::unique_ptr<std::FILE, int (*)(std::FILE*)> guard(f, std::fclose);
  std::vector<uint8_t> bytes;
  uint8_t chunk[1 << 16];
  size_t got;
  while ((got = std::fread(chunk, 1, sizeof chunk, f)) > 0) {
    bytes.insert(bytes.end(), chunk, chunk + got);
    // Compressed images can be far smaller than their pixels, but not larger than ~4 bytes per
    // pixel for the formats we accept; refusing huge files early avoids reading a disk image.
    if ((int64_t)bytes.size() > max_pixels * 8 + (1 << 20))
      throw Error(path + ": file too large for an image of at most " + std::to_string(max_pixels) +
                  " pixels");
  }
  if (std::ferror(f)) throw Error(path + ": read error (" + std::strerror(errno) + ")");
  return decode_gray_image(bytes.data(), bytes.size(), path, max_pixels);
}

GrayImage resize_gray(const GrayImage& src, int width, int height) {
  if (src.width <= 0 || src.height <= 0 || width <= 0 || height <= 0)
    throw Error("resize_gray: cannot resize " + std::to_string(src.width) + "x" +
                std::to_string(src.height) + " to " + std::to_string(width) + "x" +
                std::to_string(height));
  GrayImage out;
  out.width = width;
  out.height = height;
  if (width == src.width && height == src.height) {
    out.pixels = src.pixels;
    return out;
  }
  out.pixels.resize((size_t)width * height);
  if (!stbir_resize_uint8(src.pixels.data(), src.width, src.height, 0, out.pixels.data(), width,
                          height, 0, 1))
    throw Error("resize_gray: stb_image_resize failed");
  return out;
}

GrayImage crop_gray(const GrayImage& src, int x, int y, int w, int h) {
  if (src.width <= 0 || src.height <= 0 || w <= 0 || h <= 0)
    throw Error("crop_gray: empty source or crop (" + std::to_string(w) + "x" + std::to_string(h) +
                ")");
  GrayImage out;
  out.width = w;
  out.height = h;
  out.pixels.resize((size_t)w * h);
  for (int r = 0; r < h; ++r) {
    int sy = std::clamp(y + r, 0, src.height - 1);
    for (int c = 0; c < w; ++c) {
      int sx = std::clamp(x + c, 0, src.width - 1);
      out.pixels[(size_t)r * w + c] = src.at(sx, sy);
    }
  }
  return out;
}

}  // namespace emotune
