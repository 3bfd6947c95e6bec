// A minimal protocol-buffers wire-format writer (https://protobuf.dev/programming-guides/encoding/):
// enough for ONNX's ModelProto. Fields are appended in call order; a sub-message is built in its
// own ProtoWriter and added with message(). Repeated scalars are written unpacked, the proto2
// default that onnx.proto (syntax "proto2") declares.
#pragma once
#include <cstdint>
#include <cstring>
#include <string>

namespace emotune {

class ProtoWriter {
 public:
  // Wire types 0 (varint) and 2 (length-delimited), and 5 (fixed32) for floats.
  ProtoWriter& varint(int field, uint64_t v) {
    key(field, 0);
    raw_varint(v);
    return *this;
  }
  ProtoWriter& int64(int field, int64_t v) { return varint(field, (uint64_t)v); }  // two's complement
  ProtoWriter& float32(int field, float v) {
    key(field, 5);
    char b[4];
    std::memcpy(b, &v, 4);  // little-endian on every platform emotune builds for (x86-64, aarch64)
    buf_.append(b, 4);
    return *this;
  }
  ProtoWriter& bytes(int field, const std::string& s) {
    key(field, 2);
    raw_varint(s.size());
    buf_ += s;
    return *this;
  }
  ProtoWriter& message(int field, const ProtoWriter& m) { return bytes(field, m.buf_); }
  // The fields of `other` after these (a concatenation of encodings is a valid message).
  ProtoWriter& append(const ProtoWriter& other) {
    buf_ += other.buf_;
    return *this;
  }
  const std::string& data() const { return buf_; }

 private:
  void key(int field, int wire_type) { raw_varint(((uint64_t)field << 3) | (uint64_t)wire_type); }
  void raw_varint(uint64_t v) {
    while (v >= 0x80) {
      buf_ += (char)((v & 0x7f) | 0x80);
      v >>= 7;
    }
    buf_ += (char)v;
  }
  std::string buf_;
};

}  // namespace emotune
