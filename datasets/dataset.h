// A face data set in memory: 48x48 8-bit gray images, hard labels in the emotune class order
// (datasets/classes.h), optional soft targets (FER+ vote distributions), and for every sample
// where it came from (original fer2013.csv row, source line or file) so that errors and joins
// can name it. FER-2013's 35,887 images take ~83 MB as uint8; nothing here depends on the
// autograd engine.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace emotune {

inline constexpr int kFaceSide = 48;
inline constexpr int kFacePixels = kFaceSide * kFaceSide;  // 2304

// FER-2013's Usage values. Image folders map their split folder names onto these
// (see split_from_name).
enum class Split : uint8_t { training = 0, public_test = 1, private_test = 2 };
inline constexpr int kNumSplits = 3;

// "Training", "PublicTest", "PrivateTest": the CSV's Usage spelling.
const char* split_name(Split s);
// Accepts the Usage spellings and, case-insensitively, folder names: train|training -> training,
// test|publictest|val|valid|validation -> public_test, privatetest -> private_test.
// Returns false when the name is unknown.
bool split_from_name(std::string_view name, Split* out);
// Usage spellings only (exact, as in fer2013.csv and fer2013new.csv).
bool split_from_usage(std::string_view usage, Split* out);
// Every accepted split name, for error messages.
std::string accepted_split_names();

struct Dataset {
  std::string source;            // the path it was loaded from (for messages)
  int num_classes = 7;           // 7, or 8 after a FER+ join in 8-class mode
  std::vector<uint8_t> images;   // size() * kFacePixels, row-major per image
  std::vector<uint8_t> labels;   // class index per sample
  std::vector<uint8_t> splits;   // Split per sample
  std::vector<int32_t> rows;     // original fer2013.csv row index (0-based data row), -1 if unknown
  std::vector<int32_t> lines;    // 1-based line in a CSV source, or record index in a packed file
  std::vector<std::string> files;  // image folders only: the file of each sample
  std::vector<float> soft;       // empty, or size() * num_classes distributions summing to 1
  int64_t skipped = 0;           // bad rows/files skipped under skip_bad
  bool packed_records = false;   // lines[] are record indices of a packed file, not CSV lines

  size_t size() const { return labels.size(); }
  bool has_soft() const { return !soft.empty(); }
  const uint8_t* image(size_t i) const { return images.data() + i * kFacePixels; }
  Split split(size_t i) const { return (Split)splits[i]; }
  // "fer2013.csv:17", "fer2013-trainval.u8.xz record 5", or the image file: for messages.
  std::string where(size_t i) const;
  // Per-class counts over all samples (num_classes entries).
  std::vector<int64_t> class_counts() const;
  // Per-class counts of the samples in split s.
  std::vector<int64_t> class_counts(Split s) const;
  int64_t count(Split s) const;

  void reserve(size_t n);
  // Appends one sample (pixels: kFacePixels bytes).
  void push(const uint8_t* pixels, int label, Split split, int32_t row, int32_t line);
  // The samples whose split is in `keep`, in their original order.
  Dataset select(const std::vector<Split>& keep) const;
  // The samples at `indices`, in that order.
  Dataset subset(const std::vector<size_t>& indices) const;
};

enum class DataFormat { automatic, csv, packed, folders };
// "auto", "csv", "packed", "folders"; throws emotune::Error listing the choices.
DataFormat data_format_from_name(std::string_view name);

struct LoadOptions {
  DataFormat format = DataFormat::automatic;
  std::vector<Split> splits;  // which splits to keep; empty keeps all
  bool skip_bad = false;      // skip malformed rows / unreadable images, warn with the count
  bool quiet = false;         // do not print the skip warning to stderr
  int64_t max_image_pixels = 64ll << 20;  // image folders: refuse larger images before decoding
};

// What a loader saw besides the data: the skipped rows (first few messages kept verbatim).
struct LoadReport {
  int64_t rows_seen = 0;  // data rows / records / image files looked at
  int64_t skipped = 0;
  std::vector<std::string> skip_messages;  // at most kMaxSkipMessages
  static constexpr size_t kMaxSkipMessages = 20;
  void note_skip(const std::string& message);
};

// Loads fer2013.csv (plain, .gz, .xz), the packed .u8[.xz] file, or an image folder tree.
// With automatic format: a directory is an image folder tree; a file whose (decompressed)
// content starts with a text header is CSV; a file named *.u8 / *.u8.xz / *.u8.gz is packed.
// Throws emotune::Error naming file:line and field on bad input unless skip_bad, in which case
// it prints "warning: <file>: skipped N bad rows (first: ...)" to stderr (unless quiet).
Dataset load_dataset(const std::string& path, const LoadOptions& options = {},
                     LoadReport* report = nullptr);

// Prints the skip warning for a finished load (used by every loader).
void warn_skipped(const std::string& path, const LoadReport& report, const char* what);

}  // namespace emotune
