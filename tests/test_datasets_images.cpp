// Image decoding (base/image.h) and image-folder data sets on committed fixtures:
// exact pixels for gray, palette and 16-bit PNGs, BT.601 grey from RGB, resizing, class and split
// folder mapping, and every kind of bad file or folder.
#include <doctest/doctest.h>

#include <fstream>
#include <sstream>

#include "base/error.h"
#include "base/image.h"
#include "datasets/classes.h"
#include "datasets/dataset.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

int fixture_pixel(int row, int i) { return (i * (2 * row + 1) + 17 * row) % 256; }

std::string data(const std::string& rel) { return testing::source_dir() + "/tests/data/" + rel; }

LoadOptions quiet() {
  LoadOptions o;
  o.quiet = true;
  return o;
}

std::string error_of(auto fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

int count_mismatches(const GrayImage& img, int row) {
  int bad = 0;
  for (int i = 0; i < 48 * 48; ++i) bad += img.pixels[i] != fixture_pixel(row, i);
  return bad;
}

}  // namespace

TEST_CASE("image: 8-bit gray, palette and 16-bit PNGs decode to the exact pixels") {
  GrayImage g = load_gray_image(data("faces/train/happy/gray48.png"));
  REQUIRE(g.width == 48);
  REQUIRE(g.height == 48);
  CHECK(count_mismatches(g, 10) == 0);
  GrayImage p = load_gray_image(data("faces/train/fearful/palette.png"));
  CHECK(count_mismatches(p, 11) == 0);
  GrayImage s = load_gray_image(data("faces/train/surprise/gray16.png"));
  CHECK(count_mismatches(s, 12) == 0);
}

TEST_CASE("image: RGB becomes BT.601 luma, rounded") {
  GrayImage g = load_gray_image(data("images/rgb4x2.png"));
  REQUIRE(g.width == 4);
  REQUIRE(g.height == 2);
  // 0.299 R + 0.587 G + 0.114 B, rounded: red 76.2, green 149.7, blue 29.1, (10,200,30) 123.8,
  // grey 128, orange (255,128,0) 151.4.
  const int want[8] = {76, 150, 29, 255, 0, 124, 128, 151};
  for (int i = 0; i < 8; ++i) {
    CAPTURE(i);
    CHECK((int)g.pixels[i] == want[i]);
  }
  GrayImage j = load_gray_image(data("faces/train/disgusted/rgb64.jpg"));
  CHECK(j.width == 64);
  CHECK(j.height == 64);
  // Blue is 128 everywhere, red = 4x, green = 4y: the centre pixel is about
  // 0.299*128 + 0.587*128 + 0.114*128 = 128 (JPEG loss: a few levels).
  CHECK(std::abs((int)j.at(32, 32) - 128) <= 4);
}

TEST_CASE("image: bad files are errors naming the file") {
  std::string p = data("faces_bad/train/happy/not_an_image.png");
  CHECK(error_of([&] { load_gray_image(p); }) == p + ": not an image (no PNG, JPEG, BMP or GIF signature)");
  std::string t = data("faces_bad/train/happy/truncated.jpg");
  CHECK(error_of([&] { load_gray_image(t); }) == t + ": truncated JPEG (no end-of-image marker after the last scan)");
  std::string m = data("faces/train/happy/missing.png");
  CHECK(error_of([&] { load_gray_image(m); }).find(m + ": cannot open image") == 0);
  // The size limit is checked from the header, before decoding.
  std::string g = data("faces/train/happy/gray48.png");
  CHECK(error_of([&] { load_gray_image(g, 1000); }) ==
        g + ": image is 48x48, more than the limit of 1000 pixels");
  // A PNG cut short: stb fails inside the decoder, and we name the file.
  std::ifstream f(g, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  std::string bytes = ss.str().substr(0, 60);
  std::string e = error_of([&] { decode_gray_image((const uint8_t*)bytes.data(), bytes.size(), "cut.png"); });
  CHECK(e.find("cut.png: ") == 0);
  CHECK(error_of([&] { decode_gray_image(nullptr, 0, "empty.png"); }) == "empty.png: empty file, not an image");
}

TEST_CASE("image: resize and crop") {
  GrayImage g = load_gray_image(data("faces/train/happy/gray48.png"));
  GrayImage same = resize_gray(g, 48, 48);
  CHECK(same.pixels == g.pixels);
  GrayImage flat;
  flat.width = 7;
  flat.height = 5;
  flat.pixels.assign(35, 77);
  GrayImage up = resize_gray(flat, 48, 48);
  CHECK(up.width == 48);
  int off = 0;
  for (uint8_t v : up.pixels) off += v != 77;
  CHECK(off == 0);  // a constant image stays constant under any interpolation filter
  GrayImage c = crop_gray(g, -2, 40, 5, 10);
  CHECK(c.width == 5);
  CHECK(c.height == 10);
  CHECK(c.at(0, 0) == g.at(0, 40));  // left of the image: border replicated
  CHECK(c.at(3, 0) == g.at(1, 40));
  CHECK(c.at(4, 9) == g.at(2, 47));  // below the image: last row replicated
  CHECK_THROWS_AS(resize_gray(g, 0, 48), Error);
}

TEST_CASE("classes: one order, every source's names") {
  CHECK(class_names(7) == std::vector<std::string>{"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"});
  CHECK(class_names(8).back() == "contempt");
  CHECK(class_from_name("disgusted") == kDisgust);
  CHECK(class_from_name("Fearful") == kFear);
  CHECK(class_from_name("surprised") == kSurprise);
  CHECK(class_from_name("happiness") == kHappy);
  CHECK(class_from_name("sadness") == kSad);
  CHECK(class_from_name("anger") == kAngry);
  CHECK(class_from_name("NEUTRAL") == kNeutral);
  CHECK(class_from_name("contempt") == kContempt);
  CHECK(class_from_name("smiling") == -1);
  for (int c = 0; c < 7; ++c) {
    CHECK(class_from_name(class_name(c)) == c);
    CHECK(class_from_name(kaggle_folder_name(c)) == c);
  }
  for (int j = 0; j < 8; ++j) CHECK(class_from_name(kFerplusColumnNames[j]) == kFerplusColumnToClass[j]);
}

TEST_CASE("folders: split and class mapping, sorted order, resize to 48x48") {
  LoadReport rep;
  Dataset d = load_dataset(data("faces"), quiet(), &rep);
  REQUIRE(d.size() == 6);
  CHECK(rep.rows_seen == 6);  // notes.txt is not an image name, so not seen
  // Splits in sorted folder order (test, then train); classes in class order inside a split.
  CHECK(d.files[0].find("test/sad/gray48.png") != std::string::npos);
  CHECK(d.files[1].find("test/neutral/small.bmp") != std::string::npos);
  CHECK(d.files[2].find("train/disgusted/rgb64.jpg") != std::string::npos);
  CHECK(d.files[3].find("train/fearful/palette.png") != std::string::npos);
  CHECK(d.files[4].find("train/happy/gray48.png") != std::string::npos);
  CHECK(d.files[5].find("train/surprise/gray16.png") != std::string::npos);
  CHECK(d.labels == std::vector<uint8_t>{kSad, kNeutral, kDisgust, kFear, kHappy, kSurprise});
  CHECK(d.split(0) == Split::public_test);
  CHECK(d.split(5) == Split::training);
  CHECK(d.rows[0] == -1);
  CHECK(d.where(4) == d.files[4]);
  GrayImage happy = load_gray_image(data("faces/train/happy/gray48.png"));
  CHECK(std::equal(happy.pixels.begin(), happy.pixels.end(), d.image(4)));
  // The 64x64 JPEG and the 40x30 BMP went through resize_gray, exactly as the app does it.
  GrayImage jpg = resize_gray(load_gray_image(data("faces/train/disgusted/rgb64.jpg")), 48, 48);
  CHECK(std::equal(jpg.pixels.begin(), jpg.pixels.end(), d.image(2)));
  GrayImage bmp = resize_gray(load_gray_image(data("faces/test/neutral/small.bmp")), 48, 48);
  CHECK(std::equal(bmp.pixels.begin(), bmp.pixels.end(), d.image(1)));

  LoadOptions train = quiet();
  train.splits = {Split::training};
  CHECK(load_dataset(data("faces"), train).size() == 4);
  // A split folder given directly: its class folders are the classes, its name the split.
  Dataset t = load_dataset(data("faces/test"), quiet());
  CHECK(t.size() == 2);
  CHECK(t.count(Split::public_test) == 2);
}

TEST_CASE("folders: bad image, unknown class folder, missing folder") {
  std::string root = data("faces_bad");
  std::string bad = data("faces_bad/train/happy/not_an_image.png");
  CHECK(error_of([&] { load_dataset(root, quiet()); }) == bad + ": not an image (no PNG, JPEG, BMP or GIF signature)");
  LoadOptions skip = quiet();
  skip.skip_bad = true;
  LoadReport rep;
  Dataset d = load_dataset(root, skip, &rep);
  CHECK(d.size() == 1);
  CHECK(rep.skipped == 2);
  CHECK(rep.rows_seen == 3);
  REQUIRE(rep.skip_messages.size() == 2);
  CHECK(rep.skip_messages[1].find("truncated.jpg: truncated JPEG") != std::string::npos);

  std::string unknown = error_of([&] { load_dataset(data("faces_unknown"), quiet()); });
  CHECK(unknown.find("unknown class folder 'smiling'") != std::string::npos);
  CHECK(unknown.find("accepted: angry, disgust, fear, happy, sad, surprise, neutral") != std::string::npos);
  CHECK(unknown.find("disgusted, fearful, surprised") != std::string::npos);

  std::string missing = data("no_such_folder");
  CHECK(error_of([&] { load_dataset(missing, quiet()); }) == missing + ": no such file or folder");
  LoadOptions folders = quiet();
  folders.format = DataFormat::folders;
  std::string file = data("fer2013/tiny.csv");
  CHECK(error_of([&] { load_dataset(file, folders); }) == file + ": not a folder");
  std::string empty = testing::temp_dir("datasets_empty_root");
  CHECK(error_of([&] { load_dataset(empty, quiet()); }).find("no split or class folders") != std::string::npos);
}
