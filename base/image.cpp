// Image decoding and resizing (see image.h). JPEG goes through libjpeg-turbo, PNG through libpng,
// BMP and GIF through stb_image; resizing through stb_image_resize v1 (Debian's libstb-dev ships v0.97 of
// stb_image_resize.h and no stb_image_resize2.h, so v1 it is; its default filters are Mitchell for
// downsampling and Catmull-Rom for upsampling). This is the one translation unit that compiles
// the stb implementations.
//
// Hardening (docs/reliability.md): the format is recognised by its magic bytes (stb's TGA probe
// would otherwise accept random bytes); only BMP and GIF are compiled into stb (STBI_ONLY_*);
// the dimensions are read from the header and refused above max_pixels before any pixel memory
// is allocated; a JPEG without an end-of-image marker after its last scan is refused as
// truncated. JPEG is not decoded by stb: fuzzing found an out-of-bounds write in the Huffman
// table builder of Debian's stb_image v2.27 (a DHT segment declaring more than 256 codes), and
// libjpeg-turbo is the decoder that OSS-Fuzz exercises continuously. Its corrupt-data warnings
// are errors here: a damaged JPEG is refused, not decoded into plausible grey. PNG followed for
// the same reason (stb's PNG reader passed a null pointer to memcpy on a zero-length IDAT): libpng
// decodes it, with the transforms that reproduce stb's pixels exactly (16-bit to the high byte,
// palette to RGB, low bit depths scaled to 0..255, alpha dropped), CRCs checked and the file
// required to be complete up to IEND.
#include "base/image.h"

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstdio>
#include <cstring>
#include <memory>

#include "base/error.h"

// libjpeg's header needs FILE and size_t declared before it.
#include <csetjmp>
#include <jpeglib.h>
#include <png.h>

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

// Every decoder refuses an image from its header size, before any pixel memory exists.
void check_image_size(const std::string& name, int64_t w, int64_t h, int64_t max_pixels) {
  if (w <= 0 || h <= 0) throw Error(name + ": image has no pixels");
  if (w * h > max_pixels)
    throw ImageTooLargeError(name + ": image is " + std::to_string(w) + "x" + std::to_string(h) +
                ", more than the limit of " + std::to_string(max_pixels) + " pixels");
}

// n interleaved pixels of 1 to 4 channels to grey, the same for every format: grey (+ alpha)
// takes the first channel; RGB (+ alpha) uses ITU-R BT.601 luma 0.299 R + 0.587 G + 0.114 B in
// 16-bit fixed point (weights sum to 65536), rounded to nearest. Alpha is ignored (faces are not
// expected to be transparent).
void gray_from_interleaved(const uint8_t* src, int channels, size_t n, uint8_t* out) {
  if (channels <= 2) {
    for (size_t i = 0; i < n; ++i) out[i] = src[i * channels];
    return;
  }
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = src + i * channels;
    out[i] = (uint8_t)((19595u * p[0] + 38470u * p[1] + 7471u * p[2] + 32768u) >> 16);
  }
}

// libjpeg reports fatal errors through error_exit, which must not return: it longjmps back to
// decode_jpeg. Everything that must survive the jump lives in this struct (reached through a
// pointer, so no local is modified between setjmp and longjmp).
struct JpegContext {
  jpeg_error_mgr err;  // first member: libjpeg's j_common_ptr->err points here
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX] = {};
  int warnings = 0;
  char first_warning[JMSG_LENGTH_MAX] = {};
  jpeg_decompress_struct cinfo{};  // zeroed: jpeg_destroy is safe even if create never ran
  GrayImage image;
  std::vector<uint8_t> row;
  ~JpegContext() { jpeg_destroy_decompress(&cinfo); }
};

void jpeg_error_exit(j_common_ptr cinfo) {
  auto* ctx = reinterpret_cast<JpegContext*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, ctx->message);
  std::longjmp(ctx->jump, 1);
}

void jpeg_emit_message(j_common_ptr cinfo, int level) {
  if (level >= 0) return;  // trace messages
  auto* ctx = reinterpret_cast<JpegContext*>(cinfo->err);
  if (ctx->warnings++ == 0) (*cinfo->err->format_message)(cinfo, ctx->first_warning);
}

// Decodes to the file's own colour space, then to grey with the same BT.601 weights as the
// other formats (libjpeg converts YCbCr to RGB; a grey JPEG is taken as it is).
GrayImage decode_jpeg(const uint8_t* bytes, size_t size, const std::string& name, int64_t max_pixels) {
  auto ctx = std::make_unique<JpegContext>();
  jpeg_decompress_struct& cinfo = ctx->cinfo;
  cinfo.err = jpeg_std_error(&ctx->err);
  ctx->err.error_exit = jpeg_error_exit;
  ctx->err.emit_message = jpeg_emit_message;
  if (setjmp(ctx->jump)) throw Error(name + ": cannot decode JPEG (" + ctx->message + ")");
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, bytes, (unsigned long)size);
  jpeg_read_header(&cinfo, TRUE);
  check_image_size(name, cinfo.image_width, cinfo.image_height, max_pixels);
  // Anything but grey and YCbCr/RGB (CMYK, YCCK) is refused by libjpeg's conversion as an error.
  cinfo.out_color_space = cinfo.jpeg_color_space == JCS_GRAYSCALE ? JCS_GRAYSCALE : JCS_RGB;
  // Bound libjpeg's own working memory too (progressive files buffer every coefficient).
  cinfo.mem->max_memory_to_use = (long)std::min<int64_t>(max_pixels * 16 + (64 << 20), LONG_MAX);
  jpeg_start_decompress(&cinfo);
  const int channels = cinfo.output_components;
  ctx->image.width = (int)cinfo.output_width;
  ctx->image.height = (int)cinfo.output_height;
  ctx->image.pixels.resize((size_t)cinfo.output_width * cinfo.output_height);
  ctx->row.resize((size_t)cinfo.output_width * channels);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* out = ctx->image.pixels.data() + (size_t)cinfo.output_scanline * cinfo.output_width;
    JSAMPROW rows[1] = {ctx->row.data()};
    if (jpeg_read_scanlines(&cinfo, rows, 1) != 1) break;  // only at the end of the data
    gray_from_interleaved(ctx->row.data(), channels, cinfo.output_width, out);
  }
  const bool complete = cinfo.output_scanline == cinfo.output_height;
  if (complete) jpeg_finish_decompress(&cinfo);
  if (!complete) throw Error(name + ": truncated JPEG (the data ends before the last row)");
  if (ctx->warnings > 0)
    throw Error(name + ": corrupt JPEG data (" + ctx->first_warning +
                (ctx->warnings > 1 ? ", and " + std::to_string(ctx->warnings - 1) + " more" : "") + ")");
  return std::move(ctx->image);
}

// libpng's error callback longjmps back to decode_png, like libjpeg's; the same rule holds: what
// must survive the jump lives in this struct.
struct PngContext {
  std::jmp_buf jump;
  char message[256] = {};
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  png_structp png = nullptr;
  png_infop info = nullptr;
  std::vector<uint8_t> pixels;  // decoded rows, 1 or 3 bytes per pixel
  std::vector<png_bytep> rows;
  ~PngContext() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

void png_error_exit(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg ? msg : "unknown error");
  std::longjmp(ctx->jump, 1);
}

void png_warning_ignore(png_structp, png_const_charp) {}  // e.g. an unknown ancillary chunk

void png_read_memory(png_structp png, png_bytep out, size_t n) {
  auto* ctx = static_cast<PngContext*>(png_get_io_ptr(png));
  if (ctx->size - ctx->pos < n) png_error(png, "the data ends early (truncated file)");
  std::memcpy(out, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

GrayImage decode_png(const uint8_t* bytes, size_t size, const std::string& name, int64_t max_pixels) {
  auto ctx = std::make_unique<PngContext>();
  ctx->data = bytes;
  ctx->size = size;
  ctx->png = png_create_read_struct(PNG_LIBPNG_VER_STRING, ctx.get(), png_error_exit, png_warning_ignore);
  if (!ctx->png) throw Error(name + ": cannot decode PNG (out of memory)");
  ctx->info = png_create_info_struct(ctx->png);
  if (!ctx->info) throw Error(name + ": cannot decode PNG (out of memory)");
  if (setjmp(ctx->jump)) throw Error(name + ": cannot decode PNG (" + ctx->message + ")");
  png_structp png = ctx->png;
  png_infop info = ctx->info;
  png_set_read_fn(png, ctx.get(), png_read_memory);
  png_set_user_limits(png, 1u << 16, 1u << 16);   // PNG allows 2^31; nobody's face does
  png_set_chunk_malloc_max(png, 8u << 20);         // text/ICC chunks: no decompression bombs
  png_read_info(png, info);
  const int64_t w = png_get_image_width(png, info), h = png_get_image_height(png, info);
  check_image_size(name, w, h, max_pixels);
  const int color = png_get_color_type(png, info);
  png_set_strip_16(png);  // 16-bit samples keep their high byte, as stb did
  if (color == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color == PNG_COLOR_TYPE_GRAY && png_get_bit_depth(png, info) < 8) png_set_expand_gray_1_2_4_to_8(png);
  png_set_strip_alpha(png);  // faces are not expected to be transparent; alpha is ignored
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  const int channels = png_get_channels(png, info);
  const size_t rowbytes = png_get_rowbytes(png, info);
  if ((channels != 1 && channels != 3) || rowbytes != (size_t)w * channels)
    png_error(png, "unsupported pixel layout after conversion");
  ctx->pixels.resize(rowbytes * (size_t)h);
  ctx->rows.resize((size_t)h);
  for (int64_t y = 0; y < h; ++y) ctx->rows[(size_t)y] = ctx->pixels.data() + (size_t)y * rowbytes;
  png_read_image(png, ctx->rows.data());
  png_read_end(png, nullptr);  // the remaining chunks up to IEND, CRCs included
  GrayImage img;
  img.width = (int)w;
  img.height = (int)h;
  img.pixels.resize((size_t)w * h);
  gray_from_interleaved(ctx->pixels.data(), channels, img.pixels.size(), img.pixels.data());
  return img;
}

}  // namespace

bool has_image_signature(const uint8_t* bytes, size_t size) {
  return sniff_format(bytes, size) != Format::unknown;
}

GrayImage decode_gray_image(const uint8_t* bytes, size_t size, const std::string& name,
                            int64_t max_pixels) {
  if (size == 0) throw Error(name + ": empty file, not an image");
  if (size > (size_t)INT_MAX) throw Error(name + ": file too large to decode (over 2 GiB)");
  Format format = sniff_format(bytes, size);
  if (format == Format::unknown)
    throw Error(name + ": not an image (no PNG, JPEG, BMP or GIF signature)");
  if (format == Format::jpeg) {
    if (!jpeg_has_end_marker(bytes, size))
      throw Error(name + ": truncated JPEG (no end-of-image marker after the last scan)");
    return decode_jpeg(bytes, size, name, max_pixels);
  }
  if (format == Format::png) return decode_png(bytes, size, name, max_pixels);
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(bytes, (int)size, &w, &h, &comp))
    throw Error(name + ": unreadable image header (" + stbi_failure_reason() + ")");
  check_image_size(name, w, h, max_pixels);

  // BMP and GIF: decode with the file's own channel count and convert here, so the grey weights
  // are ours (BT.601) and not stb's approximation.
  int channels = 0;
  std::unique_ptr<stbi_uc, StbFree> data(
      stbi_load_from_memory(bytes, (int)size, &w, &h, &channels, 0));
  if (!data) throw Error(name + ": cannot decode image (" + stbi_failure_reason() + ")");
  GrayImage img;
  img.width = w;
  img.height = h;
  img.pixels.resize((size_t)w * h);
  gray_from_interleaved(data.get(), channels, img.pixels.size(), img.pixels.data());
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
