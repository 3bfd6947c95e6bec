#include "apps/music/mood_table.h"

#include <charconv>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "base/error.h"

namespace emotune {
namespace {

// A table is a few MB at most; the cap keeps a hostile or mistaken path (a video, /dev/zero)
// from being read into memory.
constexpr size_t kMaxTableBytes = 256u << 20;

struct Record {
  std::vector<std::string> fields;
  int line = 0;  // line where the record starts (a quoted field may span lines)
};

// RFC 4180 reader: quoted fields with "" escapes and embedded newlines, CRLF or LF endings.
class CsvReader {
 public:
  CsvReader(const std::string& text, const std::string& name) : s_(text), name_(name) {
    if (s_.compare(0, 3, "\xEF\xBB\xBF") == 0) pos_ = 3;  // UTF-8 BOM from spreadsheet exports
  }

  bool next(Record& rec) {
    rec.fields.clear();
    while (pos_ < s_.size() && (s_[pos_] == '\n' || s_[pos_] == '\r')) {  // skip blank lines
      if (s_[pos_] == '\n') ++line_;
      ++pos_;
    }
    if (pos_ >= s_.size()) return false;
    rec.line = line_;
    std::string field;
    for (;;) {
      field.clear();
      if (pos_ < s_.size() && s_[pos_] == '"') {
        int open_line = line_;
        ++pos_;
        for (;;) {
          if (pos_ >= s_.size())
            throw Error(name_ + ":" + std::to_string(open_line) + ":" +
                        std::to_string(rec.fields.size() + 1) + ": unterminated quoted field");
          char c = s_[pos_++];
          if (c == '"') {
            if (pos_ < s_.size() && s_[pos_] == '"') { field += '"'; ++pos_; continue; }
            break;
          }
          if (c == '\n') ++line_;
          field += c;
        }
        if (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r')
          throw Error(name_ + ":" + std::to_string(line_) + ":" +
                      std::to_string(rec.fields.size() + 1) +
                      ": unexpected character after a closing quote");
      } else {
        while (pos_ < s_.size() && s_[pos_] != ',' && s_[pos_] != '\n' && s_[pos_] != '\r')
          field += s_[pos_++];
      }
      rec.fields.push_back(field);
      if (pos_ < s_.size() && s_[pos_] == ',') { ++pos_; continue; }
      if (pos_ < s_.size() && s_[pos_] == '\r') ++pos_;
      if (pos_ < s_.size() && s_[pos_] == '\n') { ++pos_; ++line_; }
      return true;
    }
  }

 private:
  const std::string& s_;
  const std::string& name_;
  size_t pos_ = 0;
  int line_ = 1;
};

std::string trim(const std::string& s) {
  size_t b = s.find_first_not_of(" \t"), e = s.find_last_not_of(" \t");
  return b == std::string::npos ? std::string() : s.substr(b, e - b + 1);
}

std::string lower(std::string s) {
  for (char& c : s)
    if (c >= 'A' && c <= 'Z') c = char(c - 'A' + 'a');
  return s;
}

std::string where(const std::string& name, int line, int col, const std::string& column) {
  return name + ":" + std::to_string(line) + ":" + std::to_string(col) + ": column '" + column +
         "'";
}

double parse_number(const std::string& raw, const std::string& at) {
  std::string t = trim(raw);
  double v = 0;
  const char* b = t.data();
  const char* e = b + t.size();
  if (!t.empty() && *b == '+') ++b;  // from_chars rejects a leading '+', spreadsheets write it
  auto [p, ec] = std::from_chars(b, e, v);
  if (t.empty() || ec != std::errc() || p != e)
    throw Error(at + ": '" + raw + "' is not a number");
  if (!std::isfinite(v)) throw Error(at + ": '" + raw + "' is not a finite number");
  return v;
}

}  // namespace

MoodTable parse_mood_table(const std::string& text, const std::string& name) {
  CsvReader reader(text, name);
  Record header;
  if (!reader.next(header)) throw Error(name + ": empty mood table (no header row)");

  // Canonical column -> field index; aliases let Spotify-style tables in unchanged.
  const std::map<std::string, std::string> aliases = {
      {"artist", "artist"},   {"title", "title"}, {"name", "title"},      {"valence", "valence"},
      {"energy", "energy"},   {"arousal", "energy"}, {"id", "id"},        {"popularity", "popularity"},
      {"mood", "mood"}};
  std::map<std::string, int> col;
  for (size_t i = 0; i < header.fields.size(); ++i) {
    auto it = aliases.find(lower(trim(header.fields[i])));
    if (it == aliases.end()) continue;
    if (col.count(it->second))
      throw Error(name + ":" + std::to_string(header.line) + ":" + std::to_string(i + 1) +
                  ": column '" + it->second + "' appears twice (as '" + trim(header.fields[i]) +
                  "' and at column " + std::to_string(col[it->second] + 1) + ")");
    col[it->second] = (int)i;
  }
  for (const char* required : {"artist", "title", "valence", "energy"}) {
    if (!col.count(required)) {
      std::string have;
      for (const auto& f : header.fields) have += (have.empty() ? "" : ", ") + trim(f);
      throw Error(name + ":" + std::to_string(header.line) + ": missing required column '" +
                  required + "' (the header has: " + have +
                  "; required: artist, title, valence, energy)");
    }
  }

  MoodTable table;
  table.path = name;
  table.has_id = col.count("id");
  table.has_popularity = col.count("popularity");
  table.has_mood = col.count("mood");
  auto field = [&](const Record& r, const char* c) -> const std::string& {
    return r.fields[(size_t)col.at(c)];
  };

  Record rec;
  while (reader.next(rec)) {
    if (rec.fields.size() != header.fields.size())
      throw Error(name + ":" + std::to_string(rec.line) + ": expected " +
                  std::to_string(header.fields.size()) + " fields like the header, found " +
                  std::to_string(rec.fields.size()));
    Track t;
    t.line = rec.line;
    t.artist = trim(field(rec, "artist"));
    t.title = trim(field(rec, "title"));
    if (t.artist.empty())
      throw Error(where(name, rec.line, col["artist"] + 1, "artist") + ": empty");
    if (t.title.empty())
      throw Error(where(name, rec.line, col["title"] + 1, "title") + ": empty");
    for (const char* c : {"valence", "energy"}) {
      std::string at = where(name, rec.line, col[c] + 1, c);
      double v = parse_number(field(rec, c), at);
      if (v < 0.0 || v > 1.0)
        throw Error(at + ": " + trim(field(rec, c)) + " is outside [0, 1]");
      (std::string(c) == "valence" ? t.valence : t.energy) = v;
    }
    if (table.has_popularity) {
      std::string at = where(name, rec.line, col["popularity"] + 1, "popularity");
      t.popularity = parse_number(field(rec, "popularity"), at);
      if (t.popularity < 0) throw Error(at + ": " + trim(field(rec, "popularity")) + " is negative");
    }
    if (table.has_id) t.id = trim(field(rec, "id"));
    if (table.has_mood) t.mood = trim(field(rec, "mood"));
    table.tracks.push_back(std::move(t));
  }
  if (table.tracks.empty()) throw Error(name + ": the mood table has a header but no tracks");
  return table;
}

MoodTable read_mood_table(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::exists(path, ec)) throw Error(path + ": mood table not found");
  if (!std::filesystem::is_regular_file(path, ec))
    throw Error(path + ": mood table is not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) throw Error(path + ": cannot open mood table (permission?)");
  in.seekg(0, std::ios::end);
  std::streamoff size = in.tellg();
  if (size < 0) throw Error(path + ": cannot read mood table (not a regular file?)");
  if ((size_t)size > kMaxTableBytes)
    throw Error(path + ": mood table is " + std::to_string(size) + " bytes; the limit is " +
                std::to_string(kMaxTableBytes));
  in.seekg(0);
  std::string text((size_t)size, '\0');
  if (!in.read(text.data(), size)) throw Error(path + ": read error");
  return parse_mood_table(text, path);
}

}  // namespace emotune
