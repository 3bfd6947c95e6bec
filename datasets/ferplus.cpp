#include "datasets/ferplus.h"

#include <charconv>
#include <string_view>

#include "base/error.h"
#include "datasets/byte_stream.h"

namespace emotune {

namespace {

constexpr int kUnknown = 8, kNotFace = 9;
constexpr int kFerplusContemptColumn = 7;
constexpr const char* kHeader =
    "Usage,Image name,neutral,happiness,surprise,sadness,anger,disgust,fear,contempt,unknown,NF";

}  // namespace

FerPlusMode ferplus_mode_from_name(const std::string& name) {
  if (name == "majority") return FerPlusMode::majority;
  if (name == "distribution") return FerPlusMode::distribution;
  throw Error("unknown FER+ label mode '" + name + "' (expected majority or distribution)");
}

FerPlusTable load_ferplus(const std::string& path) {
  ByteStream stream(path);
  LineReader lines(stream);
  std::string_view line;
  if (!lines.next(&line)) throw Error(path + ": empty file, expected the fer2013new.csv header");
  if (line.size() >= 3 && line.substr(0, 3) == "\xEF\xBB\xBF") line.remove_prefix(3);
  if (line != kHeader)
    throw Error(path + ":1: bad header '" + std::string(line.substr(0, 120)) + "', expected '" +
                kHeader + "'");
  FerPlusTable t;
  t.source = path;
  int32_t line_no = 1;
  while (lines.next(&line)) {
    ++line_no;
    if (line.empty()) continue;
    auto fail = [&](const std::string& what) {
      throw Error(path + ":" + std::to_string(line_no) + ": " + what);
    };
    std::string_view f[12];
    int nf = 0;
    size_t start = 0;
    for (;;) {
      size_t comma = line.find(',', start);
      if (nf < 12) f[nf] = line.substr(start, comma == std::string_view::npos ? comma : comma - start);
      ++nf;
      if (comma == std::string_view::npos) break;
      start = comma + 1;
    }
    if (nf != 12) fail(std::to_string(nf) + " fields, expected 12");
    Split split;
    if (!split_from_usage(f[0], &split))
      fail("field 'Usage': unknown Usage '" + std::string(f[0].substr(0, 40)) +
           "' (expected Training, PublicTest or PrivateTest)");
    FerPlusVotes v{};
    for (int j = 0; j < kFerplusColumns; ++j) {
      std::string_view s = f[2 + j];
      int n = -1;
      auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), n);
      if (ec != std::errc() || p != s.data() + s.size() || s.empty() || n < 0 || n > 255)
        fail(std::string("field '") + kFerplusColumnNames[j] + "': '" +
             std::string(s.substr(0, 20)) + "' is not a vote count 0..255");
      v[j] = (uint8_t)n;
    }
    t.votes.push_back(v);
    t.splits.push_back((uint8_t)split);
    t.named.push_back(!f[1].empty());
    t.lines.push_back(line_no);
  }
  return t;
}

FerPlusLabel ferplus_label(const FerPlusVotes& raw, bool named, const FerPlusOptions& o) {
  if (o.num_classes != kNumClasses7 && o.num_classes != kNumClasses8)
    throw Error("FER+: number of classes must be 7 or 8, not " + std::to_string(o.num_classes));
  FerPlusLabel out;
  if (o.drop_nameless && !named) {
    out.drop_reason = "no image name";
    return out;
  }
  int v[kFerplusColumns];
  int total = 0;
  for (int j = 0; j < kFerplusColumns; ++j) {
    v[j] = raw[j];
    if (o.drop_single_votes && v[j] == 1) v[j] = 0;
    total += v[j];
  }
  if (total == 0) {
    out.drop_reason = "no votes";
    return out;
  }
  // Arg-max over the 8 emotions, first in column order on ties (numpy's argmax).
  int top = 0;
  for (int j = 1; j < 8; ++j)
    if (v[j] > v[top]) top = j;
  int other = std::max(v[kUnknown], v[kNotFace]);
  bool seven = o.num_classes == kNumClasses7;

  if (o.mode == FerPlusMode::majority) {
    // A strict majority is unique, so the order of these tests does not matter.
    if (2 * v[kNotFace] > total) return out.drop_reason = "not a face", out;
    if (2 * v[kUnknown] > total) return out.drop_reason = "unknown", out;
    if (2 * v[top] <= total) return out.drop_reason = "no majority", out;
    if (seven && top == kFerplusContemptColumn) return out.drop_reason = "contempt", out;
    out.keep = true;
    out.label = kFerplusColumnToClass[top];
    out.dist[out.label] = 1.0f;
    return out;
  }

  if (other > v[top])
    return out.drop_reason = v[kNotFace] >= v[kUnknown] ? "not a face" : "unknown", out;
  if (seven) {
    bool contempt_top = true;
    for (int j = 0; j < 7; ++j)
      if (v[j] >= v[kFerplusContemptColumn]) contempt_top = false;
    if (contempt_top) return out.drop_reason = "contempt", out;
  }
  int kept = 0;
  for (int j = 0; j < (seven ? 7 : 8); ++j) kept += v[j];
  if (2 * kept <= total) return out.drop_reason = "too few emotion votes", out;
  for (int j = 0; j < (seven ? 7 : 8); ++j)
    out.dist[kFerplusColumnToClass[j]] = (float)v[j] / (float)kept;
  int best = 0;
  for (int j = 1; j < (seven ? 7 : 8); ++j)
    if (v[j] > v[best]) best = j;
  out.keep = true;
  out.label = kFerplusColumnToClass[best];
  return out;
}

Dataset apply_ferplus(const Dataset& d, const FerPlusTable& table, const FerPlusOptions& options,
                      FerPlusJoinReport* report) {
  FerPlusJoinReport local;
  FerPlusJoinReport& rep = report ? *report : local;
  std::vector<size_t> keep;
  std::vector<FerPlusLabel> labels;
  keep.reserve(d.size());
  labels.reserve(d.size());
  for (size_t i = 0; i < d.size(); ++i) {
    int32_t row = i < d.rows.size() ? d.rows[i] : -1;
    if (row < 0)
      throw Error(d.where(i) + ": no fer2013.csv row index, so no FER+ labels can be joined "
                  "(use the CSV or packed file, not image folders)");
    if ((size_t)row >= table.size())
      throw Error(d.where(i) + ": row " + std::to_string(row) + " is beyond the " +
                  std::to_string(table.size()) + " rows of " + table.source);
    if (table.splits[row] != d.splits[i])
      throw Error(d.where(i) + ": split " + split_name(d.split(i)) + " but " + table.source + ":" +
                  std::to_string(table.lines[row]) + " says " +
                  split_name((Split)table.splits[row]) + " (is it the file for these rows?)");
    FerPlusLabel l = ferplus_label(table.votes[row], table.named[row], options);
    if (!l.keep) {
      ++rep.dropped;
      continue;
    }
    ++rep.kept;
    rep.label_changed += l.label != d.labels[i];
    keep.push_back(i);
    labels.push_back(l);
  }
  Dataset out = d.subset(keep);
  out.num_classes = options.num_classes;
  out.soft.clear();
  if (options.mode == FerPlusMode::distribution) out.soft.resize(keep.size() * options.num_classes);
  for (size_t k = 0; k < keep.size(); ++k) {
    out.labels[k] = (uint8_t)labels[k].label;
    if (options.mode == FerPlusMode::distribution)
      for (int c = 0; c < options.num_classes; ++c)
        out.soft[k * options.num_classes + c] = labels[k].dist[c];
  }
  return out;
}

}  // namespace emotune
