// fer2013.csv and packed readers on the committed fixtures (tests/data/fer2013, made by
// tests/data/make_fixtures.cpp): exact values, splits, compressed variants, every malformed row.
#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "base/error.h"
#include "datasets/byte_stream.h"
#include "datasets/dataset.h"
#include "datasets/packed.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

// The formula make_fixtures.cpp wrote into every fixture pixel.
int fixture_pixel(int row, int i) { return (i * (2 * row + 1) + 17 * row) % 256; }

std::string fixture(const std::string& rel) {
  return testing::source_dir() + "/tests/data/fer2013/" + rel;
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

std::string load_error(const std::string& path, const LoadOptions& o = {}) {
  try {
    load_dataset(path, o);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

LoadOptions quiet() {
  LoadOptions o;
  o.quiet = true;
  return o;
}

const int kLabels[6] = {0, 3, 6, 2, 5, 1};
const Split kSplits[6] = {Split::training,    Split::training,    Split::training,
                          Split::public_test, Split::public_test, Split::private_test};

void check_tiny(const Dataset& d) {
  REQUIRE(d.size() == 6);
  CHECK(d.num_classes == 7);
  for (int r = 0; r < 6; ++r) {
    CAPTURE(r);
    CHECK(d.labels[r] == kLabels[r]);
    CHECK(d.split(r) == kSplits[r]);
    CHECK(d.rows[r] == r);
    int mismatches = 0;
    for (int i = 0; i < kFacePixels; ++i) mismatches += d.image(r)[i] != fixture_pixel(r, i);
    CHECK(mismatches == 0);
  }
}

}  // namespace

TEST_CASE("csv: every value of the tiny fixture parses exactly, with lines and rows") {
  Dataset d = load_dataset(fixture("tiny.csv"), quiet());
  check_tiny(d);
  CHECK(d.lines[0] == 2);  // line 1 is the header
  CHECK(d.lines[5] == 7);
  CHECK(d.where(3) == fixture("tiny.csv") + ":5");
  CHECK(d.count(Split::training) == 3);
  CHECK(d.count(Split::public_test) == 2);
  CHECK(d.count(Split::private_test) == 1);
  std::vector<int64_t> counts = d.class_counts();
  CHECK(counts == std::vector<int64_t>{1, 1, 1, 1, 0, 1, 1});
}

TEST_CASE("csv: gzip and xz give the same data as the plain file") {
  Dataset plain = load_dataset(fixture("tiny.csv"), quiet());
  for (const char* name : {"tiny.csv.gz", "tiny.csv.xz"}) {
    CAPTURE(name);
    Dataset z = load_dataset(fixture(name), quiet());
    check_tiny(z);
    CHECK(z.images == plain.images);
    CHECK(z.labels == plain.labels);
    CHECK(z.splits == plain.splits);
    CHECK(z.rows == plain.rows);
  }
  CHECK(detect_compression(fixture("tiny.csv.gz")) == Compression::gzip);
  CHECK(detect_compression(fixture("tiny.csv.xz")) == Compression::xz);
  CHECK(detect_compression(fixture("tiny.csv")) == Compression::none);
}

TEST_CASE("packed: the .u8.xz fixture equals the CSV; save/load round trip") {
  Dataset plain = load_dataset(fixture("tiny.csv"), quiet());
  Dataset packed = load_dataset(fixture("tiny.u8.xz"), quiet());
  check_tiny(packed);
  CHECK(packed.images == plain.images);
  CHECK(packed.where(2) == fixture("tiny.u8.xz") + " record 2");

  std::string dir = testing::temp_dir("datasets_packed");
  for (const char* name : {"/copy.u8", "/copy.u8.xz"}) {
    save_fer2013_packed(plain, dir + name);
    Dataset back = load_dataset(dir + name, quiet());
    CHECK(back.images == plain.images);
    CHECK(back.labels == plain.labels);
    CHECK(back.splits == plain.splits);
  }
  // Format by content: a packed file with an unusual name is still recognised (not text).
  save_fer2013_packed(plain, dir + "/renamed.bin");
  Dataset renamed = load_dataset(dir + "/renamed.bin", quiet());
  CHECK(renamed.images == plain.images);
  CHECK(renamed.where(1) == dir + "/renamed.bin record 1");
}

TEST_CASE("packed: truncated record and bad emotion byte") {
  std::string dir = testing::temp_dir("datasets_packed_bad");
  std::string raw;
  Dataset plain = load_dataset(fixture("tiny.csv"), quiet());
  save_fer2013_packed(plain, dir + "/ok.u8");
  raw = read_text(dir + "/ok.u8");
  write_text(dir + "/cut.u8", raw.substr(0, raw.size() - 100));
  std::string err = load_error(dir + "/cut.u8");
  CHECK(err.find("cut.u8 record 5: truncated") != std::string::npos);
  LoadOptions skip = quiet();
  skip.skip_bad = true;
  LoadReport rep;
  Dataset d = load_dataset(dir + "/cut.u8", skip, &rep);
  CHECK(d.size() == 5);
  CHECK(rep.skipped == 1);

  std::string bad = raw;
  bad[2 * kPackedRecordBytes] = 9;  // record 2's emotion
  write_text(dir + "/bad.u8", bad);
  err = load_error(dir + "/bad.u8");
  CHECK(err.find("bad.u8 record 2: emotion 9 out of range 0..6") != std::string::npos);
}

TEST_CASE("csv: split selection keeps the original rows") {
  LoadOptions o = quiet();
  o.splits = {Split::public_test};
  Dataset d = load_dataset(fixture("tiny.csv"), o);
  REQUIRE(d.size() == 2);
  CHECK(d.rows == std::vector<int32_t>{3, 4});
  CHECK(d.labels[0] == 2);
  CHECK(d.image(1)[100] == fixture_pixel(4, 100));
  o.splits = {Split::training, Split::private_test};
  Dataset t = load_dataset(fixture("tiny.u8.xz"), o);
  CHECK(t.rows == std::vector<int32_t>{0, 1, 2, 5});
  Dataset all = load_dataset(fixture("tiny.csv"), quiet());
  CHECK(all.select({Split::public_test}).images == d.images);
}

TEST_CASE("csv: each malformed row is reported with file, line and field") {
  const std::string path = fixture("bad.csv");
  // Without skip_bad the first bad row stops the load.
  std::string first = load_error(path);
  CHECK(first == path + ":3: field 'pixels': 3 values, expected 2304");

  LoadOptions o = quiet();
  o.skip_bad = true;
  LoadReport rep;
  Dataset d = load_dataset(path, o, &rep);
  CHECK(d.size() == 2);
  CHECK(d.lines == std::vector<int32_t>{2, 10});
  CHECK(rep.rows_seen == 9);
  CHECK(rep.skipped == 7);
  CHECK(d.skipped == 7);
  REQUIRE(rep.skip_messages.size() == 7);
  CHECK(rep.skip_messages[0] == path + ":3: field 'pixels': 3 values, expected 2304");
  CHECK(rep.skip_messages[1] == path + ":4: field 'emotion': label 9 out of range 0..6");
  CHECK(rep.skip_messages[2] == path + ":5: field 'pixels': value 3 is 'x', not an integer 0..255");
  CHECK(rep.skip_messages[3] ==
        path + ":6: field 'Usage': unknown Usage 'Validation' (expected Training, PublicTest or PrivateTest)");
  CHECK(rep.skip_messages[4] == path + ":7: field 'pixels': value 3 is '300', not an integer 0..255");
  CHECK(rep.skip_messages[5] == path + ":8: field 'emotion': 'abc' is not an integer");
  CHECK(rep.skip_messages[6] == path + ":9: 4 fields, expected 3 (emotion,pixels,Usage)");
}

TEST_CASE("csv: missing header, empty file, missing file") {
  std::string err = load_error(fixture("noheader.csv"));
  CHECK(err.find("noheader.csv:1: missing header") != std::string::npos);
  std::string dir = testing::temp_dir("datasets_csv_header");
  write_text(dir + "/empty.csv", "");
  CHECK(load_error(dir + "/empty.csv").find("empty.csv: empty file") != std::string::npos);
  write_text(dir + "/wrong.csv", "label,image\n1,2\n");
  CHECK(load_error(dir + "/wrong.csv").find("wrong.csv:1: bad header 'label,image'") != std::string::npos);
  CHECK(load_error(dir + "/nope.csv") == dir + "/nope.csv: no such file or folder");
}

TEST_CASE("csv: CRLF line endings, reordered columns and no Usage column") {
  std::string text = read_text(fixture("tiny.csv"));
  std::string dir = testing::temp_dir("datasets_csv_variants");
  std::string crlf;
  for (char c : text) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  write_text(dir + "/crlf.csv", crlf);
  check_tiny(load_dataset(dir + "/crlf.csv", quiet()));
  write_text(dir + "/bom.csv", "\xEF\xBB\xBF" + text);  // a UTF-8 BOM, as spreadsheet exports write
  check_tiny(load_dataset(dir + "/bom.csv", quiet()));

  // Usage,emotion,pixels order, and Kaggle's train.csv form (emotion,pixels: all Training).
  std::istringstream in(text);
  std::string line, reordered = "Usage,emotion,pixels\n", two = "emotion,pixels\n";
  std::getline(in, line);
  while (std::getline(in, line)) {
    size_t b = line.rfind(',');
    reordered += line.substr(b + 1) + "," + line.substr(0, b) + "\n";
    two += line.substr(0, b) + "\n";
  }
  write_text(dir + "/reordered.csv", reordered);
  check_tiny(load_dataset(dir + "/reordered.csv", quiet()));
  write_text(dir + "/two.csv", two);
  Dataset t = load_dataset(dir + "/two.csv", quiet());
  CHECK(t.size() == 6);
  CHECK(t.count(Split::training) == 6);
  CHECK(t.images == load_dataset(fixture("tiny.csv"), quiet()).images);
}

TEST_CASE("compressed: truncated gzip and xz files are errors naming the file") {
  std::string dir = testing::temp_dir("datasets_csv_truncated");
  for (const char* name : {"tiny.csv.gz", "tiny.csv.xz"}) {
    CAPTURE(name);
    std::string z = read_text(fixture(name));
    std::string cut = dir + "/cut_" + name;
    write_text(cut, z.substr(0, z.size() / 2));
    std::string err = load_error(cut);
    CHECK(err.find(cut) == 0);
    bool says_truncated = err.find("unexpected end") != std::string::npos ||
                          err.find("truncated") != std::string::npos;
    CHECK(says_truncated);
  }
}

TEST_CASE("data format names") {
  CHECK(data_format_from_name("csv") == DataFormat::csv);
  CHECK(data_format_from_name("packed") == DataFormat::packed);
  CHECK(data_format_from_name("folders") == DataFormat::folders);
  CHECK(data_format_from_name("auto") == DataFormat::automatic);
  CHECK_THROWS_AS(data_format_from_name("parquet"), Error);
  LoadOptions o = quiet();
  o.format = DataFormat::packed;
  // Forcing the packed reader on a CSV: its bytes are not records of valid emotions.
  CHECK_THROWS_AS(load_dataset(fixture("tiny.csv"), o), Error);
}
