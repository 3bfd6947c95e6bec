#include "datasets/dataset.h"

#include <cctype>
#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "datasets/byte_stream.h"
#include "datasets/fer2013_csv.h"
#include "datasets/image_folder.h"
#include "datasets/packed.h"

namespace emotune {

namespace {

constexpr const char* kUsage[kNumSplits] = {"Training", "PublicTest", "PrivateTest"};

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  return true;
}

}  // namespace

const char* split_name(Split s) {
  int i = (int)s;
  return i >= 0 && i < kNumSplits ? kUsage[i] : "?";
}

bool split_from_usage(std::string_view usage, Split* out) {
  for (int i = 0; i < kNumSplits; ++i)
    if (usage == kUsage[i]) return *out = (Split)i, true;
  return false;
}

bool split_from_name(std::string_view name, Split* out) {
  static constexpr struct {
    const char* name;
    Split split;
  } kNames[] = {{"training", Split::training},       {"train", Split::training},
                {"publictest", Split::public_test},  {"test", Split::public_test},
                {"val", Split::public_test},         {"valid", Split::public_test},
                {"validation", Split::public_test},  {"privatetest", Split::private_test}};
  for (const auto& n : kNames)
    if (iequals(name, n.name)) return *out = n.split, true;
  return false;
}

std::string accepted_split_names() {
  return "Training|train|training, PublicTest|test|val|valid|validation, PrivateTest";
}

std::string Dataset::where(size_t i) const {
  if (i < files.size() && !files[i].empty()) return files[i];
  if (i < lines.size()) {
    if (packed_records) return source + " record " + std::to_string(lines[i]);
    return source + ":" + std::to_string(lines[i]);
  }
  return source + " sample " + std::to_string(i);
}

std::vector<int64_t> Dataset::class_counts() const {
  std::vector<int64_t> c(num_classes, 0);
  for (uint8_t l : labels) ++c[l];
  return c;
}

std::vector<int64_t> Dataset::class_counts(Split s) const {
  std::vector<int64_t> c(num_classes, 0);
  for (size_t i = 0; i < size(); ++i)
    if (splits[i] == (uint8_t)s) ++c[labels[i]];
  return c;
}

int64_t Dataset::count(Split s) const {
  int64_t n = 0;
  for (uint8_t v : splits) n += v == (uint8_t)s;
  return n;
}

void Dataset::reserve(size_t n) {
  images.reserve(n * kFacePixels);
  labels.reserve(n);
  splits.reserve(n);
  rows.reserve(n);
  lines.reserve(n);
}

void Dataset::push(const uint8_t* pixels, int label, Split split, int32_t row, int32_t line) {
  images.insert(images.end(), pixels, pixels + kFacePixels);
  labels.push_back((uint8_t)label);
  splits.push_back((uint8_t)split);
  rows.push_back(row);
  lines.push_back(line);
}

Dataset Dataset::subset(const std::vector<size_t>& indices) const {
  Dataset d;
  d.source = source;
  d.num_classes = num_classes;
  d.skipped = skipped;
  d.packed_records = packed_records;
  d.reserve(indices.size());
  for (size_t i : indices) {
    d.push(image(i), labels[i], split(i), rows[i], lines[i]);
    if (!files.empty()) d.files.push_back(files[i]);
    if (has_soft())
      d.soft.insert(d.soft.end(), soft.begin() + i * num_classes,
                    soft.begin() + (i + 1) * num_classes);
  }
  return d;
}

Dataset Dataset::select(const std::vector<Split>& keep) const {
  std::vector<size_t> idx;
  for (size_t i = 0; i < size(); ++i)
    for (Split s : keep)
      if (splits[i] == (uint8_t)s) {
        idx.push_back(i);
        break;
      }
  return subset(idx);
}

DataFormat data_format_from_name(std::string_view name) {
  if (name == "auto" || name.empty()) return DataFormat::automatic;
  if (name == "csv") return DataFormat::csv;
  if (name == "packed") return DataFormat::packed;
  if (name == "folders" || name == "folder") return DataFormat::folders;
  throw Error("unknown data format '" + std::string(name) + "' (expected auto, csv, packed or folders)");
}

void LoadReport::note_skip(const std::string& message) {
  ++skipped;
  if (skip_messages.size() < kMaxSkipMessages) skip_messages.push_back(message);
}

void warn_skipped(const std::string& path, const LoadReport& report, const char* what) {
  if (report.skipped == 0) return;
  std::fprintf(stderr, "warning: %s: skipped %lld bad %s of %lld (first: %s)\n", path.c_str(),
               (long long)report.skipped, what, (long long)report.rows_seen,
               report.skip_messages.empty() ? "?" : report.skip_messages[0].c_str());
}

Dataset load_dataset(const std::string& path, const LoadOptions& options, LoadReport* report) {
  namespace fs = std::filesystem;
  LoadReport local;
  LoadReport& rep = report ? *report : local;
  DataFormat format = options.format;
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": no such file or folder");
  if (format == DataFormat::automatic) {
    if (fs::is_directory(path, ec))
      format = DataFormat::folders;
    else if (is_packed_path(path))
      format = DataFormat::packed;
    else
      format = looks_like_text(path) ? DataFormat::csv : DataFormat::packed;
  }
  Dataset d;
  switch (format) {
    case DataFormat::folders: d = load_image_folders(path, options, rep); break;
    case DataFormat::packed: d = load_fer2013_packed(path, options, rep); break;
    default: d = load_fer2013_csv(path, options, rep); break;
  }
  d.skipped = rep.skipped;
  if (!options.quiet)
    warn_skipped(path, rep, format == DataFormat::folders ? "images" : "rows");
  return d;
}

}  // namespace emotune
