#include "engine/checkpoint.h"

#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <string_view>
#include <fstream>
#include <nlohmann/json.hpp>

namespace emotune {

namespace {

constexpr uint64_t kMaxHeader = 100ull << 20;  // the reference implementation's limit

size_t dtype_size(DType d) { return d == DType::f32 ? 4 : 2; }

[[noreturn]] void fail(const std::string& path, const std::string& what) {
  throw Error(path + ": not a valid safetensors checkpoint: " + what);
}

std::string sys_error(const std::string& what, const std::string& path) {
  return what + " " + path + ": " + std::strerror(errno);
}

}  // namespace

const char* dtype_name(DType d) {
  switch (d) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
  }
  return "?";
}

DType parse_dtype(const std::string& name) {
  if (name == "F32" || name == "f32" || name == "fp32") return DType::f32;
  if (name == "F16" || name == "f16" || name == "fp16") return DType::f16;
  if (name == "BF16" || name == "bf16") return DType::bf16;
  throw Error("unknown dtype '" + name + "' (expected F32, F16 or BF16)");
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000u;
  uint32_t mag = x & 0x7fffffffu;
  if (mag >= 0x7f800000u) return (uint16_t)(sign | 0x7c00u | (mag > 0x7f800000u ? 0x200u : 0));
  if (mag >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);  // rounds to >= 65520: inf
  if (mag < 0x38800000u) {                                     // subnormal half or zero
    if (mag < 0x33000000u) return (uint16_t)sign;             // below half the smallest subnormal
    uint32_t m = (mag & 0x7fffffu) | 0x800000u;
    int shift = 126 - (int)(mag >> 23);  // value = m * 2^(E-150); in units of 2^-24: m >> (126-E)
    uint32_t half = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1), mid = 1u << (shift - 1);
    if (rem > mid || (rem == mid && (half & 1))) ++half;
    return (uint16_t)(sign | half);
  }
  uint32_t h = ((mag - 0x38000000u) >> 13);
  uint32_t rem = mag & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1))) ++h;
  return (uint16_t)(sign | h);
}

float half_to_float(uint16_t h) {
  uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  uint32_t x;
  if (exp == 0) {
    if (man == 0) x = sign;
    else {  // subnormal: normalise
      int e = -1;
      do { ++e; man <<= 1; } while (!(man & 0x400u));
      x = sign | ((uint32_t)(127 - 15 - e) << 23) | ((man & 0x3ffu) << 13);
    }
  } else if (exp == 31) {
    x = sign | 0x7f800000u | (man << 13);
  } else {
    x = sign | ((exp + 112) << 23) | (man << 13);
  }
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

uint16_t float_to_bf16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40u);  // quiet NaN
  x += 0x7fffu + ((x >> 16) & 1);
  return (uint16_t)(x >> 16);
}

float bf16_to_float(uint16_t h) {
  uint32_t x = (uint32_t)h << 16;
  float f;
  std::memcpy(&f, &x, 4);
  return f;
}

const Tensor* Checkpoint::find(const std::string& name) const {
  for (const auto& nt : tensors)
    if (nt.name == name) return &nt.tensor;
  return nullptr;
}

const Tensor& Checkpoint::get(const std::string& name, const Shape& shape) const {
  const Tensor* t = find(name);
  if (!t) throw Error(path + ": tensor '" + name + "' is missing");
  if (t->shape() != shape)
    throw Error(path + ": tensor '" + name + "' has shape " + shape_str(t->shape()) +
                ", expected " + shape_str(shape));
  return *t;
}

const std::string& Checkpoint::meta(const std::string& key) const {
  auto it = metadata.find(key);
  if (it == metadata.end()) throw Error(path + ": metadata field '" + key + "' is missing");
  return it->second;
}

namespace {
// write_file_atomic writes PATH through ".NAME" + kTempInfix + PID in the same folder;
// remove_stale_temp_files recognises its leftovers by the same pattern.
constexpr std::string_view kTempInfix = ".tmp.";
}  // namespace

void write_file_atomic(const std::string& path, const std::string& bytes) {
  namespace fs = std::filesystem;
  fs::path target(path);
  fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  std::string tmp_name = ".";  // appended piecewise: "." + string trips a GCC 12 -Wrestrict false positive
  tmp_name += target.filename().string();
  tmp_name += kTempInfix;
  tmp_name += std::to_string(getpid());
  const std::string tmp = (dir / tmp_name).string();
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) throw Error(sys_error("cannot create", tmp));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t w = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (w < 0) {
      if (errno == EINTR) continue;
      std::string msg = sys_error("cannot write", tmp);
      ::close(fd);
      ::unlink(tmp.c_str());
      throw Error(msg);
    }
    done += (size_t)w;
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    std::string msg = sys_error("cannot flush", tmp);
    ::unlink(tmp.c_str());
    throw Error(msg);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    std::string msg = sys_error("cannot rename " + tmp + " to", path);
    ::unlink(tmp.c_str());
    throw Error(msg);
  }
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

int remove_stale_temp_files(const std::string& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  int removed = 0;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    const size_t at = name.rfind(kTempInfix);
    if (name.empty() || name[0] != '.' || at == std::string::npos) continue;
    const std::string pid_text = name.substr(at + kTempInfix.size());
    if (pid_text.empty()) continue;
    if (pid_text.find_first_not_of("0123456789") != std::string::npos || pid_text.size() > 9) continue;
    const pid_t pid = (pid_t)std::stol(pid_text);
    if (pid == getpid() || ::kill(pid, 0) == 0 || errno == EPERM) continue;  // its writer still runs
    if (fs::remove(e.path(), ec)) ++removed;
  }
  return removed;
}

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata, DType dtype) {
  nlohmann::ordered_json header;
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  std::string payload;
  for (const auto& nt : tensors) {
    if (nt.name.empty() || nt.name == "__metadata__" || header.contains(nt.name))
      throw Error("save_safetensors: bad or duplicate tensor name '" + nt.name + "'");
    std::vector<float> v = nt.tensor.to_vector();
    size_t bytes = v.size() * dtype_size(dtype);
    header[nt.name] = {{"dtype", dtype_name(dtype)},
                       {"shape", nt.tensor.shape()},
                       {"data_offsets", {offset, offset + bytes}}};
    if (dtype == DType::f32) {
      payload.append(reinterpret_cast<const char*>(v.data()), bytes);
    } else {
      std::vector<uint16_t> h(v.size());
      for (size_t i = 0; i < v.size(); ++i)
        h[i] = dtype == DType::f16 ? float_to_half(v[i]) : float_to_bf16(v[i]);
      payload.append(reinterpret_cast<const char*>(h.data()), bytes);
    }
    offset += bytes;
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the format pads the header to 8 bytes
  std::string out(8, '\0');
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out[i] = (char)((n >> (8 * i)) & 0xff);
  out += json;
  out += payload;
  write_file_atomic(path, out);
}

namespace {

// The JSON header of a file's bytes (8-byte little-endian length, then the header); *size gets
// the length.
nlohmann::json read_header(const std::string& path, const std::string& bytes, uint64_t* size) {
  if (bytes.size() < 8) fail(path, "file is " + std::to_string(bytes.size()) + " bytes, shorter than the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  if (n > kMaxHeader) fail(path, "header length " + std::to_string(n) + " exceeds 100 MB");
  if (n > bytes.size() - 8)
    fail(path, "header length " + std::to_string(n) + " runs past the end of the file (" +
                   std::to_string(bytes.size()) + " bytes): truncated?");
  nlohmann::json header;
  try {
    header = nlohmann::json::parse(bytes.begin() + 8, bytes.begin() + 8 + (int64_t)n);
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("header is not valid JSON: ") + e.what());
  }
  if (!header.is_object()) fail(path, "header is not a JSON object");
  *size = n;
  return header;
}

void read_metadata(const std::string& path, const nlohmann::json& e, Checkpoint& ck) {
  if (!e.is_object()) fail(path, "__metadata__ is not an object");
  for (auto m = e.begin(); m != e.end(); ++m) {
    if (!m.value().is_string()) fail(path, "__metadata__." + m.key() + " is not a string");
    ck.metadata[m.key()] = m.value().get<std::string>();
  }
}

Shape read_shape(const std::string& path, const std::string& where, const nlohmann::json& js, uint64_t* count) {
  if (!js.is_array()) fail(path, where + ": shape is not an array");
  Shape shape;
  *count = 1;
  for (const auto& d : js) {
    if (!d.is_number_unsigned()) fail(path, where + ": shape has a non-integer or negative entry");
    uint64_t v = d.get<uint64_t>();
    if (v > (1ull << 40) || (v && *count > (1ull << 40) / v)) fail(path, where + ": shape is too large");
    *count *= v;
    shape.push_back((int64_t)v);
  }
  return shape;
}

// count values stored as dt, as float32.
std::vector<float> decode_values(const char* src, uint64_t count, DType dt) {
  std::vector<float> v(count);
  if (dt == DType::f32) {
    if (count) std::memcpy(v.data(), src, count * 4);
  } else {
    for (uint64_t i = 0; i < count; ++i) {
      uint16_t h;
      std::memcpy(&h, src + 2 * i, 2);
      v[i] = dt == DType::f16 ? half_to_float(h) : bf16_to_float(h);
    }
  }
  return v;
}

// A tensor's dtype field. Its own function so that the caller's dtype is a plain value: assigned
// inside a try block it stayed in memory, and the conversion loop above, re-reading it for every
// element, made the models load ~15% slower.
DType read_dtype(const std::string& path, const std::string& where, const nlohmann::json& e) {
  if (!e["dtype"].is_string()) fail(path, where + ": dtype is not a string");
  try {
    return parse_dtype(e["dtype"].get<std::string>());
  } catch (const Error&) {
    fail(path, where + ": unsupported dtype '" + e["dtype"].get<std::string>() + "' (F32, F16, BF16)");
  }
}

// Where a tensor's bytes lie in the data buffer.
struct Range {
  uint64_t begin, end;
  std::string name;
};

// One tensor's header entry, checked field by field, and its values from the data buffer.
Tensor read_tensor(const std::string& path, const std::string& name, const nlohmann::json& e, const char* buffer,
                   uint64_t buffer_size, DType* dtype, Range* range) {
  std::string where = "tensor '" + name + "'";
  if (!e.is_object()) fail(path, where + " is not an object");
  for (const char* field : {"dtype", "shape", "data_offsets"})
    if (!e.contains(field)) fail(path, where + " has no field '" + field + "'");
  const DType dt = read_dtype(path, where, e);
  uint64_t count = 0;
  const Shape shape = read_shape(path, where, e["shape"], &count);
  const auto& off = e["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    fail(path, where + ": data_offsets must be two non-negative integers");
  uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
  if (begin > end || end > buffer_size)
    fail(path, where + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                   "] outside the " + std::to_string(buffer_size) + "-byte data buffer (truncated file?)");
  if (end - begin != count * dtype_size(dt))
    fail(path, where + ": " + std::to_string(end - begin) + " bytes for shape " + shape_str(shape) +
                   " of " + dtype_name(dt) + " (expected " + std::to_string(count * dtype_size(dt)) + ")");
  *dtype = dt;
  *range = {begin, end, name};
  return Tensor::from_vector(shape, decode_values(buffer + begin, count, dt));
}

// The tensors must tile the buffer exactly: no overlap, no gap, no trailing bytes.
// Sorted by (begin, end) as the reference implementation does: an empty tensor [x, x] must come
// before a tensor [x, y] that starts at the same byte, or a valid file looks overlapping.
void check_tiling(const std::string& path, std::vector<Range> ranges, uint64_t buffer_size) {
  std::sort(ranges.begin(), ranges.end(), [](const Range& a, const Range& b) {
    return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
  });
  uint64_t pos = 0;
  for (const auto& r : ranges) {
    if (r.begin != pos)
      fail(path, "tensor '" + r.name + "' starts at byte " + std::to_string(r.begin) + ", expected " +
                     std::to_string(pos) + " (overlapping or gapped data)");
    pos = r.end;
  }
  if (pos != buffer_size)
    fail(path, std::to_string(buffer_size - pos) + " trailing bytes after the last tensor");
}

}  // namespace

Checkpoint load_safetensors(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) throw Error(path + ": cannot open checkpoint: " + std::strerror(errno));
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  uint64_t n = 0;
  const nlohmann::json header = read_header(path, bytes, &n);
  Checkpoint ck;
  ck.path = path;
  const uint64_t buffer_size = bytes.size() - 8 - n;
  const char* buffer = bytes.data() + 8 + n;
  std::vector<Range> ranges;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      read_metadata(path, it.value(), ck);
      continue;
    }
    DType dt;
    Range range;
    Tensor t = read_tensor(path, it.key(), it.value(), buffer, buffer_size, &dt, &range);
    if (ck.tensors.empty()) ck.dtype = dt;
    ck.tensors.push_back({it.key(), std::move(t)});
    ranges.push_back(std::move(range));
  }
  check_tiling(path, std::move(ranges), buffer_size);
  return ck;
}

}  // namespace emotune
