#include "datasets/fer2013_csv.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <string_view>
#include <vector>

#include "base/error.h"
#include "datasets/byte_stream.h"

namespace emotune {

namespace {

std::string_view trim(std::string_view f) {
  while (!f.empty() && (f.front() == ' ' || f.front() == '\t')) f.remove_prefix(1);
  while (!f.empty() && (f.back() == ' ' || f.back() == '\t')) f.remove_suffix(1);
  if (f.size() >= 2 && f.front() == '"' && f.back() == '"') f = f.substr(1, f.size() - 2);
  return f;
}

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::tolower((unsigned char)a[i]) != std::tolower((unsigned char)b[i])) return false;
  return true;
}

std::string shorten(std::string_view s, size_t n = 40) {
  return s.size() <= n ? std::string(s) : std::string(s.substr(0, n)) + "...";
}

struct Columns {
  int count = 0, emotion = -1, pixels = -1, usage = -1;
};

Columns parse_header(std::string_view line, const std::string& path) {
  if (line.size() >= 3 && std::memcmp(line.data(), "\xEF\xBB\xBF", 3) == 0) line.remove_prefix(3);
  Columns c;
  size_t start = 0;
  for (int i = 0;; ++i) {
    size_t comma = line.find(',', start);
    std::string_view name = trim(line.substr(start, comma == std::string_view::npos ? comma : comma - start));
    if (iequals(name, "emotion")) c.emotion = i;
    else if (iequals(name, "pixels")) c.pixels = i;
    else if (iequals(name, "usage")) c.usage = i;
    c.count = i + 1;
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  if (c.emotion < 0 || c.pixels < 0) {
    bool data_like = !line.empty() && line[0] >= '0' && line[0] <= '9';
    throw Error(path + ":1: " +
                (data_like ? std::string("missing header: expected 'emotion,pixels,Usage', got a data row")
                           : "bad header '" + shorten(line) + "': expected columns emotion, pixels and optionally Usage"));
  }
  return c;
}

// Parses 2304 pixels into out; returns an empty string or the error text (without file:line).
std::string parse_pixels(std::string_view f, uint8_t* out) {
  const char* p = f.data();
  const char* end = p + f.size();
  int n = 0;
  for (;;) {
    while (p < end && (*p == ' ' || *p == '\t')) ++p;
    if (p == end) break;
    const char* tok = p;
    unsigned v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    bool sep_ok = next == end || *next == ' ' || *next == '\t';
    if (ec != std::errc() || !sep_ok || v > 255) {
      const char* tok_end = tok;
      while (tok_end < end && *tok_end != ' ' && *tok_end != '\t') ++tok_end;
      return "field 'pixels': value " + std::to_string(n + 1) + " is '" +
             shorten(std::string_view(tok, tok_end - tok), 20) + "', not an integer 0..255";
    }
    if (n < kFacePixels) out[n] = (uint8_t)v;
    ++n;
    p = next;
  }
  if (n != kFacePixels)
    return "field 'pixels': " + std::to_string(n) + " values, expected " + std::to_string(kFacePixels);
  return {};
}

}  // namespace

Dataset load_fer2013_csv(const std::string& path, const LoadOptions& options, LoadReport& report) {
  ByteStream stream(path);
  LineReader lines(stream);
  std::string_view line;
  if (!lines.next(&line)) throw Error(path + ": empty file, expected a header 'emotion,pixels,Usage'");
  Columns cols = parse_header(line, path);

  bool keep[kNumSplits] = {options.splits.empty(), options.splits.empty(), options.splits.empty()};
  for (Split s : options.splits) keep[(int)s] = true;

  Dataset d;
  d.source = path;
  d.num_classes = 7;
  std::vector<std::string_view> fields(cols.count);
  std::vector<uint8_t> pixels(kFacePixels);
  int64_t line_no = 1;
  int32_t row = -1;
  while (lines.next(&line)) {
    ++line_no;
    if (line.empty()) continue;  // a blank line is not a row (a trailing one is common)
    ++row;
    ++report.rows_seen;
    std::string err;
    // Split on commas; the pixel field has none, so this is a handful of memchr calls.
    int nf = 0;
    size_t start = 0;
    for (;;) {
      size_t comma = line.find(',', start);
      std::string_view f = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
      if (nf < cols.count) fields[nf] = f;
      ++nf;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    int label = -1;
    Split split = Split::training;
    if (nf != cols.count) {
      err = std::to_string(nf) + " fields, expected " + std::to_string(cols.count) + " (emotion,pixels,Usage)";
    } else {
      std::string_view e = trim(fields[cols.emotion]);
      auto [p, ec] = std::from_chars(e.data(), e.data() + e.size(), label);
      if (ec != std::errc() || p != e.data() + e.size() || e.empty())
        err = "field 'emotion': '" + shorten(e) + "' is not an integer";
      else if (label < 0 || label > 6)
        err = "field 'emotion': label " + std::to_string(label) + " out of range 0..6";
      else if (cols.usage >= 0 && !split_from_usage(trim(fields[cols.usage]), &split))
        err = "field 'Usage': unknown Usage '" + shorten(trim(fields[cols.usage])) +
              "' (expected Training, PublicTest or PrivateTest)";
    }
    if (err.empty() && !keep[(int)split]) continue;
    if (err.empty()) err = parse_pixels(trim(fields[cols.pixels]), pixels.data());
    if (!err.empty()) {
      std::string msg = path + ":" + std::to_string(line_no) + ": " + err;
      if (!options.skip_bad) throw Error(msg);
      report.note_skip(msg);
      continue;
    }
    d.push(pixels.data(), label, split, row, (int32_t)line_no);
  }
  return d;
}

}  // namespace emotune
