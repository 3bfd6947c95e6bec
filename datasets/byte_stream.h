// A forward-only byte stream over a plain, gzip or xz file, the compression recognised by its
// magic bytes (1f 8b: gzip through zlib; fd 37 7a 58 5a 00: xz through liblzma's stream decoder,
// concatenated streams allowed; anything else: read as is). Readers pull chunks and never hold the
// whole (decompressed) file, so a 270 MB CSV streams through a 1 MB buffer.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace emotune {

enum class Compression { none, gzip, xz };

class ByteStream {
 public:
  // Throws emotune::Error naming the file when it cannot be opened.
  explicit ByteStream(const std::string& path);
  ~ByteStream();
  ByteStream(const ByteStream&) = delete;
  ByteStream& operator=(const ByteStream&) = delete;

  // Reads up to n bytes; returns 0 only at the end of the data. Throws emotune::Error naming the
  // file on a read error or corrupt/truncated compressed data.
  size_t read(uint8_t* out, size_t n);
  // Reads exactly n bytes unless the data ends first; returns how many were read.
  size_t read_full(uint8_t* out, size_t n);

  Compression compression() const { return compression_; }
  const std::string& path() const { return path_; }

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::string path_;
  Compression compression_ = Compression::none;
};

// Splits a ByteStream into lines without copying them: a window (1 MiB reads, grown for longer
// lines up to 64 MiB) holds whole lines plus a partial tail.
class LineReader {
 public:
  explicit LineReader(ByteStream& s);
  // The next line without its '\n' (and without a trailing '\r'); false at the end. The view is
  // valid until the next call.
  bool next(std::string_view* line);

 private:
  void fill();
  ByteStream& s_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
};

// The compression of a file from its first bytes (none for an unreadable file).
Compression detect_compression(const std::string& path);
// True when the decompressed content starts with printable ASCII (a CSV header or row).
bool looks_like_text(const std::string& path);

}  // namespace emotune
