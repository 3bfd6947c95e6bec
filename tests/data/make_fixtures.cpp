// Regenerates the dataset fixtures in tests/data/ (see tests/data/DATASETS.md). Not part of the
// build: the outputs are committed so tests never depend on this program.
//   g++ -std=c++20 -O1 -I/usr/include/stb tests/data/make_fixtures.cpp -lz -llzma -o /tmp/make_fixtures
//   /tmp/make_fixtures tests/data
// Every pixel value is a formula the tests recompute (fixture_pixel in the tests).
#include <lzma.h>
#include <zlib.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>
#include <vector>

#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#pragma GCC diagnostic ignored "-Wunused-function"
#include <stb_image_write.h>

namespace fs = std::filesystem;

static std::string root;

// The pixel formula shared with tests/test_datasets_csv.cpp: covers 0 and 255 and 1-3 digits.
static int fixture_pixel(int row, int i) { return (i * (2 * row + 1) + 17 * row) % 256; }

static void write_file(const std::string& rel, const std::string& bytes) {
  fs::path p = fs::path(root) / rel;
  fs::create_directories(p.parent_path());
  FILE* f = std::fopen(p.c_str(), "wb");
  std::fwrite(bytes.data(), 1, bytes.size(), f);
  std::fclose(f);
}

static std::string pixels_field(int row) {
  std::string s;
  for (int i = 0; i < 2304; ++i) {
    if (i) s += ' ';
    s += std::to_string(fixture_pixel(row, i));
  }
  return s;
}

static std::string xz_compress(const std::string& in, bool delta) {
  lzma_options_delta d{};
  d.type = LZMA_DELTA_TYPE_BYTE;
  d.dist = 48;
  lzma_options_lzma lz{};
  lzma_lzma_preset(&lz, 6);
  lzma_filter with_delta[] = {{LZMA_FILTER_DELTA, &d}, {LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
  lzma_filter plain[] = {{LZMA_FILTER_LZMA2, &lz}, {LZMA_VLI_UNKNOWN, nullptr}};
  std::string out(lzma_stream_buffer_bound(in.size()), '\0');
  size_t pos = 0;
  lzma_ret r = lzma_stream_buffer_encode(delta ? with_delta : plain, LZMA_CHECK_CRC64, nullptr,
                            (const uint8_t*)in.data(), in.size(), (uint8_t*)out.data(), &pos, out.size());
  if (r != LZMA_OK) std::abort();
  out.resize(pos);
  return out;
}

static std::string gz_compress(const std::string& in) {
  // gzip container via deflateInit2 (windowBits 31), with a fixed mtime of 0 for reproducibility.
  z_stream z{};
  deflateInit2(&z, 9, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY);
  std::string out(deflateBound(&z, in.size()) + 64, '\0');
  z.next_in = (Bytef*)in.data();
  z.avail_in = in.size();
  z.next_out = (Bytef*)out.data();
  z.avail_out = out.size();
  deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

// A minimal PNG writer for what stb_image_write cannot make: palette and 16-bit images.
static void put32(std::string& s, uint32_t v) {
  for (int k = 3; k >= 0; --k) s += (char)((v >> (8 * k)) & 0xFF);
}
static void chunk(std::string& png, const char* type, const std::string& data) {
  put32(png, data.size());
  std::string td = std::string(type, 4) + data;
  png += td;
  put32(png, crc32(0, (const Bytef*)td.data(), td.size()));
}
static std::string png_encode(int w, int h, int bit_depth, int color_type, const std::string& rows,
                              const std::string& plte) {
  std::string png = "\x89PNG\r\n\x1a\n";
  std::string ihdr;
  put32(ihdr, w);
  put32(ihdr, h);
  ihdr += (char)bit_depth;
  ihdr += (char)color_type;
  ihdr += std::string(3, '\0');
  chunk(png, "IHDR", ihdr);
  if (!plte.empty()) chunk(png, "PLTE", plte);
  uLongf n = compressBound(rows.size());
  std::string z(n, '\0');
  compress2((Bytef*)z.data(), &n, (const Bytef*)rows.data(), rows.size(), 9);
  z.resize(n);
  chunk(png, "IDAT", z);
  chunk(png, "IEND", "");
  return png;
}

static std::string to_string(const std::vector<unsigned char>& v) { return std::string(v.begin(), v.end()); }
static void stb_sink(void* ctx, void* data, int size) {
  ((std::vector<unsigned char>*)ctx)->insert(((std::vector<unsigned char>*)ctx)->end(),
                                             (unsigned char*)data, (unsigned char*)data + size);
}

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_fixtures TESTS_DATA_DIR\n");
    return 2;
  }
  root = argv[1];

  // --- fer2013 CSV: 6 rows, labels and Usage chosen to cover every split ------------------
  const int labels[6] = {0, 3, 6, 2, 5, 1};
  const char* usage[6] = {"Training", "Training", "Training", "PublicTest", "PublicTest", "PrivateTest"};
  std::string csv = "emotion,pixels,Usage\n";
  for (int r = 0; r < 6; ++r) csv += std::to_string(labels[r]) + "," + pixels_field(r) + "," + usage[r] + "\n";
  write_file("fer2013/tiny.csv", csv);
  write_file("fer2013/tiny.csv.gz", gz_compress(csv));
  write_file("fer2013/tiny.csv.xz", xz_compress(csv, false));
  std::string packed;
  for (int r = 0; r < 6; ++r) {
    packed += (char)labels[r];
    packed += (char)(r < 3 ? 0 : r < 5 ? 1 : 2);
    for (int i = 0; i < 2304; ++i) packed += (char)fixture_pixel(r, i);
  }
  write_file("fer2013/tiny.u8.xz", xz_compress(packed, true));

  // Malformed rows, one problem each, between two good rows (line numbers in the comments).
  std::string bad = "emotion,pixels,Usage\n";
  bad += "4," + pixels_field(0) + ",Training\n";  // 2: good
  bad += "3,1 2 3,Training\n";                    // 3: 3 pixels
  bad += "9,0 0,Training\n";                      // 4: label 9
  bad += "2,1 2 x 4,Training\n";                  // 5: non-numeric pixel
  bad += "4,1 2 3,Validation\n";                  // 6: unknown Usage
  bad += "5,1 2 300 4,PublicTest\n";              // 7: pixel out of range
  bad += "abc,1,Training\n";                      // 8: emotion not a number
  bad += "1,2,3,Training\n";                      // 9: 4 fields
  bad += "6," + pixels_field(1) + ",PublicTest\n";  // 10: good
  write_file("fer2013/bad.csv", bad);
  write_file("fer2013/noheader.csv", "4," + pixels_field(0) + ",Training\n");

  // --- FER+ votes for the 6 tiny.csv rows --------------------------------------------------
  // columns: neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF
  std::string fp = "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF\n";
  fp += "Training,fer0000000.png,0,0,0,1,8,1,0,0,0,0\n";     // anger majority
  fp += "Training,fer0000001.png,4,5,0,0,0,0,0,0,1,0\n";     // happiness 5 of 9 after outlier removal
  fp += "Training,,0,0,0,0,0,0,0,0,0,10\n";                  // not a face, no image name
  fp += "PublicTest,fer0000003.png,3,0,0,3,0,0,3,0,1,0\n";  // no majority; distribution 1/3 each
  fp += "PublicTest,fer0000004.png,0,0,2,0,0,0,0,6,2,0\n";  // contempt majority
  fp += "PrivateTest,fer0000005.png,2,0,0,0,0,0,0,0,6,2\n"; // unknown majority
  write_file("ferplus/tiny_ferplus.csv", fp);

  // --- image folders ----------------------------------------------------------------------
  std::vector<unsigned char> buf;
  std::string gray48(2304, '\0');
  for (int i = 0; i < 2304; ++i) gray48[i] = (char)fixture_pixel(10, i);
  buf.clear();
  stbi_write_png_to_func(stb_sink, &buf, 48, 48, 1, gray48.data(), 48);
  write_file("faces/train/happy/gray48.png", to_string(buf));
  write_file("faces_bad/train/happy/gray48.png", to_string(buf));
  write_file("faces_unknown/train/smiling/gray48.png", to_string(buf));
  write_file("faces/train/happy/notes.txt", "not an image; ignored by extension\n");

  // RGB 64x64 JPEG (class folder spelled as the Kaggle release does: "disgusted").
  std::string rgb(64 * 64 * 3, '\0');
  for (int y = 0; y < 64; ++y)
    for (int x = 0; x < 64; ++x) {
      rgb[(y * 64 + x) * 3 + 0] = (char)(x * 4);
      rgb[(y * 64 + x) * 3 + 1] = (char)(y * 4);
      rgb[(y * 64 + x) * 3 + 2] = (char)128;
    }
  buf.clear();
  stbi_write_jpg_to_func(stb_sink, &buf, 64, 64, 3, rgb.data(), 90);
  write_file("faces/train/disgusted/rgb64.jpg", to_string(buf));
  // The same JPEG cut in half: stb would decode it with grey filler; we must refuse it.
  write_file("faces_bad/train/happy/truncated.jpg", to_string(buf).substr(0, buf.size() / 2));
  write_file("faces_bad/train/happy/not_an_image.png", "this is text, not a PNG\n");

  // Palette PNG (colour type 3, 8-bit indices), gray palette entry k = 255 - k: exact values.
  std::string plte;
  for (int k = 0; k < 256; ++k) plte += std::string(3, (char)(255 - k));
  std::string rows;
  for (int y = 0; y < 48; ++y) {
    rows += '\0';  // filter: none
    for (int x = 0; x < 48; ++x) rows += (char)(255 - fixture_pixel(11, y * 48 + x));
  }
  write_file("faces/train/fearful/palette.png", png_encode(48, 48, 8, 3, rows, plte));

  // 16-bit gray PNG with v * 257 (stb reduces 16 to 8 bits by >> 8: exactly v again).
  rows.clear();
  for (int y = 0; y < 48; ++y) {
    rows += '\0';
    for (int x = 0; x < 48; ++x) {
      int v = fixture_pixel(12, y * 48 + x) * 257;
      rows += (char)(v >> 8);
      rows += (char)(v & 0xFF);
    }
  }
  write_file("faces/train/surprise/gray16.png", png_encode(48, 48, 16, 0, rows, ""));

  // 40x30 24-bit BMP in the test split (resized to 48x48 on load).
  std::string bmp_rgb(40 * 30 * 3, '\0');
  for (int i = 0; i < 40 * 30 * 3; ++i) bmp_rgb[i] = (char)((i * 7) % 256);
  buf.clear();
  stbi_write_bmp_to_func(stb_sink, &buf, 40, 30, 3, bmp_rgb.data());
  write_file("faces/test/neutral/small.bmp", to_string(buf));
  std::string gray_b(2304, '\0');
  for (int i = 0; i < 2304; ++i) gray_b[i] = (char)fixture_pixel(13, i);
  buf.clear();
  stbi_write_png_to_func(stb_sink, &buf, 48, 48, 1, gray_b.data(), 48);
  write_file("faces/test/sad/gray48.png", to_string(buf));
  // 4x2 RGB PNG of known colours for the BT.601 grey conversion (outside the folder trees).
  const unsigned char colors[8][3] = {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}, {255, 255, 255},
                                      {0, 0, 0},   {10, 200, 30}, {128, 128, 128}, {255, 128, 0}};
  buf.clear();
  stbi_write_png_to_func(stb_sink, &buf, 4, 2, 3, colors, 12);
  write_file("images/rgb4x2.png", to_string(buf));
  std::printf("fixtures written under %s\n", root.c_str());
  return 0;
}
