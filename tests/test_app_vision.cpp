// Face detection, face crops, image errors and preprocessing parity with the training path.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "apps/pipeline/paths.h"
#include "apps/report/predict.h"
#include "apps/vision/face.h"
#include "base/error.h"
#include "base/image.h"
#include "base/preprocess.h"
#include "datasets/dataset.h"
#include "datasets/image_folder.h"
#include "tests/testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using emotune::testing::error_of;

namespace {

std::string fixture(const std::string& name) {
  return testing::source_dir() + "/tests/data/app/" + name;
}

bool inside(const FaceBox& b, int w, int h) {
  return b.x >= 0 && b.y >= 0 && b.w > 0 && b.h > 0 && b.x + b.w <= w && b.y + b.h <= h;
}



}  // namespace

TEST_CASE("detection: both faces of a real two-person photo, left to right, nothing else") {
  FaceDetector detector;
  GrayImage img = load_gray_image(fixture("two_people.jpg"));
  auto faces = detector.detect(img);
  REQUIRE(faces.size() == 2);
  CHECK(faces[0].x < faces[1].x);
  // Obama's face is in the left half, Biden's in the right half, both in the top half, and
  // each ~15% of the width (74-76 px at 480 px).
  CHECK(faces[0].x + faces[0].w < img.width / 2);
  CHECK(faces[1].x > img.width / 2);
  for (const FaceBox& f : faces) {
    CHECK(inside(f, img.width, img.height));
    CHECK(f.y + f.h < img.height / 2);
    CHECK(f.w > 60);
    CHECK(f.w < 95);
  }
  // Deterministic: the same image gives the same boxes.
  CHECK(detector.detect(img) == faces);
}

TEST_CASE("detection: a flat image has no face; a 48x48 face crop has one") {
  FaceDetector detector;
  CHECK(detector.detect(load_gray_image(fixture("flat_gray.png"))).empty());
  CHECK(detector.detect(load_gray_image(fixture("face48.png"))).size() == 1);
  GrayImage tiny;
  tiny.width = 10;
  tiny.height = 10;
  tiny.pixels.assign(100, 200);
  CHECK(detector.detect(tiny).empty());  // smaller than the cascade window: no crash, no face
}

TEST_CASE("detection: the dlib group photos with frontal faces, read in place") {
  // dlib's own annotations give 6 and 7 faces; these photos may not be copied (SOURCE.md).
  std::string dir = testing::shared_dir() + "/data/photos/";
  if (!fs::exists(dir + "dlib_2008_002470.jpg")) {
    MESSAGE("SKIPPED (no ../shared/data/photos): group photo face counts");
    return;
  }
  FaceDetector detector;
  CHECK(detector.detect(load_gray_image(dir + "dlib_2008_002470.jpg")).size() == 6);
  CHECK(detector.detect(load_gray_image(dir + "dlib_2008_004176.jpg")).size() == 7);
  // The big fr_* photos go through the 640 px detection downscale: boxes come back in full size.
  // Two men and, in the corner, a girl whose face SOURCE.md does not count (an "ignore" box in
  // tests/data/faces_boxes.json; the HOG detector finds her).
  GrayImage big = load_gray_image(dir + "fr_obama_and_biden.jpg");
  auto faces = detector.detect(big);
  CHECK(faces.size() == 3);
  for (const FaceBox& f : faces) CHECK(inside(f, big.width, big.height));
  for (const FaceBox& f : faces) CHECK(f.w > 150);  // ~200-240 px faces in a 2000 px photo
  // The listener search falls back to the full search when every face is small (~9% here).
  CHECK(detector.detect_listener(load_gray_image(dir + "dlib_2008_004176.jpg")).size() == 7);
}

TEST_CASE("detection: the listener search finds the same large faces as the full search") {
  FaceDetector detector;
  for (const char* name : {"two_people.jpg", "face48.png"}) {
    GrayImage img = load_gray_image(fixture(name));
    INFO(name);
    CHECK(detector.detect_listener(img) == detector.detect(img));
  }
  GrayImage face = load_gray_image(testing::source_dir() + "/examples/face.jpg");
  auto all = detector.detect(face);
  REQUIRE(all.size() == 1);
  CHECK(detector.detect_listener(face) == all);
  CHECK(detector.detect_listener(load_gray_image(fixture("flat_gray.png"))).empty());
}

TEST_CASE("detection: a missing cascade is a clear error") {
  std::string msg = error_of([] { FaceDetector d("/nonexistent/cascade.xml"); });
  CHECK(msg.find("/nonexistent/cascade.xml not found") != std::string::npos);
  CHECK(msg.find("opencv-data") != std::string::npos);
  std::string bad = error_of([] { FaceDetector d(fixture("tracks_ok.csv")); });
  CHECK(bad.find("is not a valid OpenCV cascade") != std::string::npos);
}

TEST_CASE("crop with margin: square, inside the image, centred when there is room") {
  // Room on every side: side = w * 1.2, same centre.
  FaceBox c = crop_box_with_margin({100, 100, 50, 50}, 400, 300, 0.1);
  CHECK(c == FaceBox{95, 95, 60, 60});
  CHECK(crop_box_with_margin({100, 100, 50, 50}, 400, 300, 0.0) == FaceBox{100, 100, 50, 50});
  // At the top-left corner the box is shifted in, not cut or padded.
  CHECK(crop_box_with_margin({0, 0, 40, 40}, 400, 300, 0.25) == FaceBox{0, 0, 60, 60});
  // At the bottom-right corner likewise.
  CHECK(crop_box_with_margin({360, 260, 40, 40}, 400, 300, 0.25) == FaceBox{340, 240, 60, 60});
  // A face as big as the image: the square shrinks to the shorter side.
  CHECK(crop_box_with_margin({0, 0, 300, 300}, 400, 300, 0.5) == FaceBox{0, 0, 300, 300});
  CHECK(error_of([] { crop_box_with_margin({0, 0, 10, 10}, 100, 100, -0.1); })
            .find("margin must be") != std::string::npos);

  // Random boxes: always a square inside the image that contains the face when it fits.
  auto r = testing::random_vector(4 * 200, 42, 0.0f, 1.0f);
  for (int i = 0; i < 200; ++i) {
    int W = 50 + (int)(r[4 * i] * 600), H = 50 + (int)(r[4 * i + 1] * 600);
    int side = 10 + (int)(r[4 * i + 2] * (std::min(W, H) - 10));
    int x = (int)(r[4 * i + 3] * (W - side)), y = (int)(r[4 * i] * (H - side));
    double margin = r[4 * i + 1] * 0.5;
    FaceBox b = crop_box_with_margin({x, y, side, side}, W, H, margin);
    INFO("image " << W << "x" << H << " face " << x << "," << y << "," << side << " margin "
                  << margin << " -> " << b.x << "," << b.y << "," << b.w << "," << b.h);
    CHECK(b.w == b.h);
    CHECK(inside(b, W, H));
    CHECK(b.w >= side);
    CHECK(b.x <= x);
    CHECK(b.y <= y);
    CHECK(b.x + b.w >= x + side);
    CHECK(b.y + b.h >= y + side);
  }
}

TEST_CASE("bad images: missing, not an image, truncated - each named") {
  CHECK(error_of([] { load_gray_image(fixture("missing.jpg")); }).find("missing.jpg") !=
        std::string::npos);
  CHECK(error_of([] { load_gray_image(fixture("not_an_image.jpg")); }).find("not an image") !=
        std::string::npos);
  CHECK(error_of([] { load_gray_image(fixture("truncated.jpg")); }).find("truncated") !=
        std::string::npos);
}

TEST_CASE("hostile PNGs: refused by name") {
  // Fuzzing found stb_image's PNG reader passing a null pointer to memcpy on this file (a
  // zero-length, CRC-less IDAT); libpng now decodes PNG and refuses it.
  const std::string crash = testing::source_dir() + "/fuzz/corpus/image/crash-stb-png-null-memcpy.png";
  CHECK(testing::contains(error_of([&] { load_gray_image(crash); }),
                          "crash-stb-png-null-memcpy.png: cannot decode PNG ("));
  // Cut short: every prefix past the signature is refused, none decodes into partial pixels.
  const std::string bytes = testing::read_text(fixture("face48.png"));
  fs::path dir = testing::temp_dir("hostile_png");
  for (size_t cut : {size_t(12), size_t(40), bytes.size() / 2, bytes.size() - 13, bytes.size() - 1}) {
    std::ofstream((dir / "cut.png").string(), std::ios::binary) << bytes.substr(0, cut);
    INFO("cut at " << cut << " of " << bytes.size());
    CHECK(testing::contains(error_of([&] { load_gray_image((dir / "cut.png").string()); }), "cut.png: "));
  }
  CHECK(testing::contains(error_of([&] { load_gray_image(fixture("face48.png"), 100); }),
                          "more than the limit of 100 pixels"));
}

TEST_CASE("hostile JPEGs: refused by name, never decoded into plausible pixels") {
  // The input with which fuzzing found stb_image v2.27's Huffman-table overflow (a DHT segment
  // declaring more than 256 codes); libjpeg-turbo now decodes JPEG and refuses it.
  const std::string crash = testing::source_dir() + "/fuzz/corpus/image/crash-stb-huffman-overflow.jpg";
  std::string msg = error_of([&] { load_gray_image(crash); });
  CHECK(testing::contains(msg, "crash-stb-huffman-overflow.jpg: cannot decode JPEG ("));

  // Damaged entropy-coded data (bytes overwritten in the middle of the scan) with intact markers:
  // libjpeg would fill the damage with grey and warn; the warning is an error here.
  std::string bytes = testing::read_text(fixture("two_people.jpg"));
  size_t sos = bytes.rfind("\xFF\xDA");
  REQUIRE(sos != std::string::npos);
  for (size_t i = sos + (bytes.size() - sos) / 2, k = 0; k < 64; ++k, i += 7) bytes[i] = (char)0xFF, bytes[i + 1] = (char)0xD3;
  fs::path dir = testing::temp_dir("hostile_jpeg");
  std::ofstream((dir / "damaged.jpg").string(), std::ios::binary) << bytes;
  msg = error_of([&] { load_gray_image((dir / "damaged.jpg").string()); });
  CHECK(testing::contains(msg, "damaged.jpg: corrupt JPEG data ("));

  // A header claiming more pixels than the limit is refused before any pixel memory exists.
  msg = error_of([&] { load_gray_image(fixture("two_people.jpg"), 1000); });
  CHECK(testing::contains(msg, "more than the limit of 1000 pixels"));
}

TEST_CASE("image paths: folders expand to their images, sorted; missing paths are errors") {
  fs::path dir = testing::temp_dir("app_paths");
  for (const char* n : {"b.png", "a.JPG", "c.txt", "d.jpeg"}) std::ofstream(dir / n) << "x";
  fs::create_directory(dir / "sub.png");  // a folder with an image-like name is not an image
  auto files = expand_image_paths({(dir).string(), fixture("face48.png")});
  REQUIRE(files.size() == 4);
  CHECK(fs::path(files[0]).filename() == "a.JPG");
  CHECK(fs::path(files[1]).filename() == "b.png");
  CHECK(fs::path(files[2]).filename() == "d.jpeg");
  CHECK(files[3] == fixture("face48.png"));
  CHECK(error_of([&] { expand_image_paths({(dir / "nope.png").string()}); })
            .find("no such file or folder") != std::string::npos);
  fs::path empty = testing::temp_dir("app_paths_empty");
  CHECK(error_of([&] { expand_image_paths({empty.string()}); }).find("holds no image files") !=
        std::string::npos);
}

TEST_CASE("preprocessing parity: the app's input equals the image-folder dataset path's") {
  // The same file through both paths: training (load_image_folders -> Preprocess::apply) and the
  // app with --no-detect (find_faces without detector -> prepare_face_inputs). Both must give
  // bit-identical floats, for a 48x48 crop and for an image that must be resized.
  Preprocess pp;  // the paper network's preprocessing
  Preprocess other{48, 1.0f / 255.0f, 0.5f, 0.25f};
  for (const char* name : {"face48.png", "two_people.jpg"}) {
    fs::path root = testing::temp_dir(std::string("app_parity_") + name);
    fs::create_directories(root / "happy");
    fs::copy_file(fixture(name), root / "happy" / name);
    LoadOptions opts;
    LoadReport report;
    Dataset d = load_image_folders(root.string(), opts, report);
    REQUIRE(d.size() == 1);

    GrayImage img = load_gray_image(fixture(name));
    auto faces = find_faces(img, nullptr, 0.1);
    REQUIRE(faces.size() == 1);
    CHECK(faces[0].crop == FaceBox{0, 0, img.width, img.height});
    for (const Preprocess& p : {pp, other}) {
      std::vector<float> want((size_t)p.size * p.size);
      p.apply(d.image(0), want.data());
      std::vector<float> got = prepare_face_inputs(img, faces, p);
      INFO(name);
      // Same functions on the same bytes: exact equality, no tolerance.
      EMOTUNE_CHECK_CLOSE(testing::allclose(got, want, 0.0, 0.0));
    }
  }
}

TEST_CASE("preprocessing: a detected face is cropped, resized to 48x48 and scaled to [0, 1]") {
  FaceDetector detector;
  GrayImage img = load_gray_image(fixture("two_people.jpg"));
  auto faces = find_faces(img, &detector, 0.1);
  REQUIRE(faces.size() == 2);
  Preprocess pp;
  std::vector<float> x = prepare_face_inputs(img, faces, pp);
  REQUIRE(x.size() == 2u * 48 * 48);
  // The second face's input is exactly crop -> resize_gray -> apply on that crop.
  GrayImage c = resize_gray(crop_gray(img, faces[1].crop.x, faces[1].crop.y, faces[1].crop.w,
                                      faces[1].crop.h),
                            48, 48);
  std::vector<float> want(48 * 48);
  pp.apply(c.pixels.data(), want.data());
  EMOTUNE_CHECK_CLOSE(testing::allclose(x.data() + 48 * 48, want.data(), 48 * 48, 0.0, 0.0));
  CHECK(*std::min_element(x.begin(), x.end()) >= 0.0f);
  CHECK(*std::max_element(x.begin(), x.end()) <= 1.0f);
}
