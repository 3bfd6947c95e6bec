#include "datasets/byte_stream.h"

#include <lzma.h>
#include <zlib.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <vector>

#include "base/error.h"

namespace emotune {

namespace {

Compression sniff(const uint8_t* b, size_t n) {
  if (n >= 2 && b[0] == 0x1f && b[1] == 0x8b) return Compression::gzip;
  if (n >= 6 && std::memcmp(b, "\xFD" "7zXZ\0", 6) == 0) return Compression::xz;
  return Compression::none;
}

const char* lzma_message(lzma_ret r) {
  switch (r) {
    case LZMA_MEM_ERROR: return "out of memory";
    case LZMA_FORMAT_ERROR: return "not an xz stream";
    case LZMA_OPTIONS_ERROR: return "unsupported xz options";
    case LZMA_DATA_ERROR: return "corrupt xz data";
    case LZMA_BUF_ERROR: return "truncated xz data (unexpected end of file)";
    default: return "xz decoder error";
  }
}

}  // namespace

struct ByteStream::Impl {
  std::FILE* file = nullptr;  // plain and xz
  gzFile gz = nullptr;        // gzip
  lzma_stream xz = LZMA_STREAM_INIT;
  bool xz_open = false, xz_done = false;
  std::vector<uint8_t> in;  // compressed input buffer (xz)
};

ByteStream::ByteStream(const std::string& path) : impl_(std::make_unique<Impl>()), path_(path) {
  compression_ = detect_compression(path);
  if (compression_ == Compression::gzip) {
    impl_->gz = gzopen(path.c_str(), "rb");
    if (!impl_->gz) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
    gzbuffer(impl_->gz, 1 << 18);
    return;
  }
  impl_->file = std::fopen(path.c_str(), "rb");
  if (!impl_->file) throw Error(path + ": cannot open (" + std::strerror(errno) + ")");
  if (compression_ == Compression::xz) {
    lzma_ret r = lzma_stream_decoder(&impl_->xz, UINT64_MAX, LZMA_CONCATENATED);
    if (r != LZMA_OK) throw Error(path + ": " + lzma_message(r));
    impl_->xz_open = true;
    impl_->in.resize(1 << 18);
  }
}

ByteStream::~ByteStream() {
  if (impl_->gz) gzclose(impl_->gz);
  if (impl_->file) std::fclose(impl_->file);
  if (impl_->xz_open) lzma_end(&impl_->xz);
}

size_t ByteStream::read(uint8_t* out, size_t n) {
  if (n == 0) return 0;
  Impl& s = *impl_;
  if (compression_ == Compression::gzip) {
    unsigned want = (unsigned)std::min<size_t>(n, 1u << 30);
    int got = gzread(s.gz, out, want);
    int errnum = Z_OK;
    const char* msg = gzerror(s.gz, &errnum);
    if (got < 0 || (got == 0 && errnum != Z_OK))
      throw Error(path_ + ": gzip: " + (msg && *msg ? msg : "read error"));
    return (size_t)got;
  }
  if (compression_ == Compression::none) {
    size_t got = std::fread(out, 1, n, s.file);
    if (got == 0 && std::ferror(s.file))
      throw Error(path_ + ": read error (" + std::strerror(errno) + ")");
    return got;
  }
  // xz: decode until `out` has something or the stream ends.
  if (s.xz_done) return 0;
  s.xz.next_out = out;
  s.xz.avail_out = n;
  while (s.xz.avail_out == n) {
    lzma_action action = LZMA_RUN;
    if (s.xz.avail_in == 0) {
      size_t got = std::fread(s.in.data(), 1, s.in.size(), s.file);
      if (got == 0 && std::ferror(s.file))
        throw Error(path_ + ": read error (" + std::strerror(errno) + ")");
      s.xz.next_in = s.in.data();
      s.xz.avail_in = got;
      if (got == 0) action = LZMA_FINISH;
    }
    lzma_ret r = lzma_code(&s.xz, action);
    if (r == LZMA_STREAM_END) {
      s.xz_done = true;
      break;
    }
    if (r != LZMA_OK) throw Error(path_ + ": " + lzma_message(r));
  }
  return n - s.xz.avail_out;
}

size_t ByteStream::read_full(uint8_t* out, size_t n) {
  size_t total = 0;
  while (total < n) {
    size_t got = read(out + total, n - total);
    if (got == 0) break;
    total += got;
  }
  return total;
}

namespace {
constexpr size_t kLineChunk = 1 << 20;
constexpr size_t kMaxLine = 64 << 20;  // a longer "line" is not a text row

void trim_cr(std::string_view* line) {
  if (!line->empty() && line->back() == '\r') line->remove_suffix(1);
}
}  // namespace

LineReader::LineReader(ByteStream& s) : s_(s), buf_(2 * kLineChunk) {}

bool LineReader::next(std::string_view* line) {
  for (;;) {
    const char* nl = (const char*)std::memchr(buf_.data() + pos_, '\n', end_ - pos_);
    if (nl) {
      size_t len = nl - (buf_.data() + pos_);
      *line = std::string_view(buf_.data() + pos_, len);
      pos_ += len + 1;
      trim_cr(line);
      return true;
    }
    if (eof_) {
      if (pos_ == end_) return false;
      *line = std::string_view(buf_.data() + pos_, end_ - pos_);
      pos_ = end_;
      trim_cr(line);
      return true;
    }
    fill();
  }
}

void LineReader::fill() {
  // Move the partial line to the front, grow when one line fills most of the window, then read.
  size_t tail = end_ - pos_;
  std::memmove(buf_.data(), buf_.data() + pos_, tail);
  pos_ = 0;
  end_ = tail;
  if (buf_.size() - end_ < kLineChunk / 2) {
    if (buf_.size() >= kMaxLine)
      throw Error(s_.path() + ": a line longer than 64 MiB: not a text/CSV file");
    buf_.resize(buf_.size() * 2);
  }
  size_t got = s_.read((uint8_t*)buf_.data() + end_, buf_.size() - end_);
  if (got == 0) eof_ = true;
  end_ += got;
}

Compression detect_compression(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return Compression::none;
  uint8_t head[8] = {};
  size_t n = std::fread(head, 1, sizeof head, f);
  std::fclose(f);
  return sniff(head, n);
}

bool looks_like_text(const std::string& path) {
  try {
    ByteStream s(path);
    uint8_t head[64];
    size_t n = s.read_full(head, sizeof head);
    if (n == 0) return true;  // empty: let the CSV reader say so
    size_t start = n >= 3 && std::memcmp(head, "\xEF\xBB\xBF", 3) == 0 ? 3 : 0;  // UTF-8 BOM
    for (size_t i = start; i < n; ++i) {
      uint8_t c = head[i];
      if (!(std::isprint(c) || c == '\n' || c == '\r' || c == '\t')) return false;
    }
    return true;
  } catch (const Error&) {
    return true;  // unreadable: the CSV reader reports it with the file name
  }
}

}  // namespace emotune
