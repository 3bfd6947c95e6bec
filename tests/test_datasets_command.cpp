// `emotune dataset stats` on the fixtures: the count table, FER+ relabelling, and the face grid.
#include <doctest/doctest.h>

#include <sstream>

#include "apps/cmd_dataset.h"
#include "apps/commands.h"
#include "base/error.h"
#include "base/image.h"
#include "datasets/augment.h"
#include "datasets/grid.h"
#include "datasets/loader.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

std::string data(const std::string& rel) { return testing::source_dir() + "/tests/data/" + rel; }

std::string stats(DatasetStatsOptions o) {
  std::ostringstream out;
  run_dataset_stats(o, out);
  return out.str();
}

}  // namespace

TEST_CASE("dataset stats: per-split class table") {
  DatasetStatsOptions o;
  o.data = data("fer2013/tiny.csv");
  std::string s = stats(o);
  CHECK(s.find("data: " + o.data + " (6 faces)") != std::string::npos);
  CHECK(s.find("split           angry  disgust     fear    happy      sad surprise  neutral    total") !=
        std::string::npos);
  // tiny.csv: Training rows are labels 0, 3, 6; PublicTest 2, 5; PrivateTest 1.
  CHECK(s.find("Training            1        0        0        1        0        0        1        3") !=
        std::string::npos);
  CHECK(s.find("PublicTest          0        0        1        0        0        1        0        2") !=
        std::string::npos);
  CHECK(s.find("all                 1        1        1        1        0        1        1        6") !=
        std::string::npos);
  CHECK(s.find("loss class weights") != std::string::npos);
}

TEST_CASE("dataset stats: FER+ relabelling and option errors") {
  DatasetStatsOptions o;
  o.data = data("fer2013/tiny.csv");
  o.ferplus = data("ferplus/tiny_ferplus.csv");
  o.classes = 8;
  std::string s = stats(o);
  CHECK(s.find("FER+ labels (majority, 8 classes): kept 3, dropped 3") != std::string::npos);
  CHECK(s.find("contempt") != std::string::npos);
  DatasetStatsOptions bad;
  bad.data = data("fer2013/tiny.csv");
  bad.classes = 8;
  CHECK_THROWS_WITH_AS(stats(bad), doctest::Contains("--classes 8 needs --ferplus"), Error);
  bad.classes = 7;
  bad.data = data("fer2013/bad.csv");
  CHECK_THROWS_WITH_AS(stats(bad), doctest::Contains("bad.csv:3:"), Error);
  bad.skip_bad = true;
  CHECK(stats(bad).find("(2 faces, 7 bad skipped)") != std::string::npos);
}

TEST_CASE("dataset stats: the grid PNG is the loader's first batch, through the CLI") {
  std::string dir = testing::temp_dir("datasets_command_grid");
  std::string png = dir + "/grid.png";
  std::string folder = data("faces");
  const char* argv[] = {"emotune", "dataset", "stats", "--data", folder.c_str(), "--grid",
                        png.c_str(), "--grid-size", "2", "--grid-scale", "1", "--augment", "none",
                        "--seed", "3"};
  CLI::App app;
  add_dataset_command(app);
  app.parse((int)(sizeof argv / sizeof argv[0]), const_cast<char**>(argv));
  GrayImage g = load_gray_image(png);
  // 2x2 tiles of 48 px with 2 px gaps around and between them.
  CHECK(g.width == 2 * 48 + 3 * 2);
  CHECK(g.height == 2 * 48 + 3 * 2);
  CHECK(g.at(0, 0) == 128);  // gap grey

  // Tile 0 holds the first face of the same loader with the same seed, exactly.
  LoadOptions lo;
  lo.quiet = true;
  lo.splits = {Split::training};
  Dataset d = load_dataset(folder, lo);
  LoaderOptions lopt;
  lopt.batch_size = 4;
  lopt.threads = 0;
  lopt.seed = 3;
  BatchLoader loader(d, lopt);
  loader.start_epoch(0);
  const Batch* b = loader.next();
  int mismatches = 0;
  for (int y = 0; y < 48; ++y)
    for (int x = 0; x < 48; ++x) mismatches += g.at(2 + x, 2 + y) != d.image(b->samples[0])[y * 48 + x];
  CHECK(mismatches == 0);  // no augmentation, scale 1/255 and back: exact
  loader.release(b);
}

TEST_CASE("face grid and PNG writing") {
  std::vector<float> imgs(3 * 4, 0.5f);
  imgs[0] = 0.0f;
  imgs[4] = 1.0f;
  GrayImage g = face_grid(imgs.data(), 3, 2, 0.0f, 1.0f, 2, 2, 1);
  CHECK(g.width == 2 * 4 + 3);
  CHECK(g.height == 2 * 4 + 3);
  CHECK(g.at(1, 1) == 0);     // image 0 pixel 0, scaled x2
  CHECK(g.at(2, 2) == 0);
  CHECK(g.at(3, 1) == 128);   // image 0 pixel 1 (0.5 -> 127.5 rounds to 128)
  CHECK(g.at(6, 1) == 255);   // image 1 pixel 0
  CHECK(g.at(6, 6) == 128);   // image 2 pixel 0 (0.5)
  CHECK(g.at(10, 10) == 128); // the empty fourth tile stays grey
  std::string dir = testing::temp_dir("datasets_grid_png");
  save_gray_png(g, dir + "/g.png");
  CHECK(load_gray_image(dir + "/g.png").pixels == g.pixels);
  CHECK_THROWS_WITH_AS(save_gray_png(g, dir + "/no/such/dir/g.png"), doctest::Contains("g.png: cannot write PNG"), Error);
}
