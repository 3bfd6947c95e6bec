// Checkpoints in the safetensors format: round trips in F32/F16/BF16, the half and bfloat16
// conversions against hand-computed bits and an independent nearest-value search, the layout the
// reference format requires, a file written by the reference Python library, every malformed
// input the loader must refuse (with the file and the field named), and the atomic write.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "engine/checkpoint.h"
#include "kernels/philox.h"
#include "tests/testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using emotune::testing::random_vector;
using emotune::testing::contains;
using emotune::testing::error_of;

namespace {

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), (std::streamsize)bytes.size());
}

std::string le64(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = (char)((n >> (8 * i)) & 0xff);
  return s;
}

// A file with this header text (length prefixed) and `payload` after it.
std::string st_file(const std::string& header, const std::string& payload) {
  return le64(header.size()) + header + payload;
}

uint32_t bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}

float from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

std::vector<NamedTensor> sample_tensors() {
  return {{"conv1.weight", Tensor::from_vector({4, 1, 3, 3}, random_vector(36, 1, -2.0f, 2.0f))},
          {"conv1.bias", Tensor::from_vector({4}, random_vector(4, 2))},
          {"bn1.running_var", Tensor::from_vector({4}, random_vector(4, 3, 0.5f, 100.0f))},
          {"dense.weight", Tensor::from_vector({3, 5}, random_vector(15, 4, -1e-3f, 1e-3f))},
          {"scalar", Tensor::from_vector({}, {3.25f})},
          {"empty", Tensor::zeros({0, 3})}};
}

const std::map<std::string, std::string> kMeta = {
    {"arch", "paper"},
    {"classes", R"(["angry","disgust","fear","happy","neutral","sad","surprise"])"},
    {"preprocess", R"({"mean":0.0,"scale":0.00392156862745098,"size":48,"std":1.0})"},
    {"note", "quotes \" backslash \\ newline \n unicode \xc3\xa9"}};

}  // namespace

// ------------------------------------------------------------------ round trips

TEST_CASE("checkpoint: F32 round trip is exact and keeps shapes and metadata") {
  std::string dir = emotune::testing::temp_dir("ckpt_f32");
  std::string path = dir + "/a.safetensors";
  auto tensors = sample_tensors();
  save_safetensors(path, tensors, kMeta, DType::f32);
  Checkpoint ck = load_safetensors(path);
  CHECK(ck.path == path);
  CHECK(ck.metadata == kMeta);
  CHECK(ck.tensors.size() == tensors.size());
  for (const auto& nt : tensors) {
    INFO(nt.name);
    const Tensor& t = ck.get(nt.name, nt.tensor.shape());
    CHECK(t.device() == Device::cpu);
    CHECK(t.to_vector() == nt.tensor.to_vector());  // bit-exact
  }
  CHECK(ck.meta("arch") == "paper");
}

TEST_CASE("checkpoint: F16 and BF16 round trips are within each format's precision") {
  std::string dir = emotune::testing::temp_dir("ckpt_half");
  auto tensors = sample_tensors();
  struct Fmt { DType d; double rel; uint16_t (*to)(float); float (*from)(uint16_t); };
  // Round to nearest: relative error <= 2^-11 (F16, 10 stored mantissa bits) and 2^-8 (BF16, 7),
  // for values in the normal range; dense.weight goes down to ~1e-7, below F16's normal range
  // (6.1e-5), where the absolute error is <= 2^-25.
  const Fmt fmts[] = {{DType::f16, std::ldexp(1.0, -11), float_to_half, half_to_float},
                      {DType::bf16, std::ldexp(1.0, -8), float_to_bf16, bf16_to_float}};
  for (const Fmt& f : fmts) {
    INFO(dtype_name(f.d));
    std::string path = dir + "/" + dtype_name(f.d) + ".safetensors";
    save_safetensors(path, tensors, kMeta, f.d);
    // the file is half the size of the F32 payload
    size_t numel = 0;
    for (const auto& nt : tensors) numel += (size_t)nt.tensor.numel();
    std::string bytes = read_bytes(path);
    uint64_t n = 0;
    for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
    CHECK(bytes.size() == 8 + n + 2 * numel);

    Checkpoint ck = load_safetensors(path);
    CHECK(ck.metadata == kMeta);
    for (const auto& nt : tensors) {
      INFO(nt.name);
      std::vector<float> want = nt.tensor.to_vector();
      std::vector<float> got = ck.get(nt.name, nt.tensor.shape()).to_vector();
      REQUIRE(got.size() == want.size());
      for (size_t i = 0; i < got.size(); ++i) {
        CHECK(got[i] == f.from(f.to(want[i])));  // exactly the documented conversion
        CHECK(std::fabs(got[i] - want[i]) <= f.rel * std::fabs(want[i]) + std::ldexp(1.0, -25));
      }
    }
  }
  CHECK(std::string(dtype_name(DType::f16)) == "F16");
  CHECK(std::string(dtype_name(DType::bf16)) == "BF16");
  CHECK(parse_dtype("F32") == DType::f32);
  CHECK(contains(error_of([] { (void)parse_dtype("I64"); }), "I64"));
}

// ------------------------------------------------------------------ conversions

TEST_CASE("float_to_half / half_to_float on edge values, by hand") {
  const float tiny = std::ldexp(1.0f, -24);  // the smallest half subnormal
  struct Case { float f; uint16_t h; const char* why; };
  const Case cases[] = {
      {0.0f, 0x0000, "zero"},
      {-0.0f, 0x8000, "negative zero keeps its sign"},
      {1.0f, 0x3c00, "one"},
      {-2.0f, 0xc000, "minus two"},
      {0.5f, 0x3800, "a half"},
      {65504.0f, 0x7bff, "the largest half"},
      {65519.0f, 0x7bff, "below the midpoint to 65536 rounds down"},
      {65520.0f, 0x7c00, "the midpoint to 65536 rounds (to even) to infinity"},
      {1e6f, 0x7c00, "overflow"},
      {-1e6f, 0xfc00, "negative overflow"},
      {INFINITY, 0x7c00, "infinity"},
      {-INFINITY, 0xfc00, "minus infinity"},
      {std::ldexp(1.0f, -14), 0x0400, "the smallest normal"},
      {std::ldexp(1.0f, -14) - tiny, 0x03ff, "the largest subnormal"},
      {tiny, 0x0001, "2^-24, the smallest subnormal"},
      {-tiny, 0x8001, "minus 2^-24"},
      {std::ldexp(1.0f, -25), 0x0000, "2^-25 ties between 0 and 2^-24: even is 0"},
      {std::ldexp(1.5f, -25), 0x0001, "above the tie rounds up"},
      {std::ldexp(1.0f, -26), 0x0000, "underflow"},
      {3 * std::ldexp(1.0f, -25), 0x0002, "1.5 * 2^-24 ties between 1 and 2 units: even is 2"},
      {5 * std::ldexp(1.0f, -25), 0x0002, "2.5 units ties between 2 and 3: even is 2"},
      {1.0f + std::ldexp(1.0f, -11), 0x3c00, "1 + half an ulp ties to even (1)"},
      {1.0f + 3 * std::ldexp(1.0f, -11), 0x3c02, "1 + 1.5 ulp ties to even (1 + 2 ulp)"},
      {1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20), 0x3c01, "just above the tie rounds up"},
      {2047.0f + 0.5f, 0x6800, "2047.5: ulp is 1 here, tie rounds to 2048 (even)"},
      {0.1f, 0x2e66, "0.1 (as IEEE tables give it)"},
      {1.0f / 3.0f, 0x3555, "one third"},
  };
  for (const Case& c : cases) {
    INFO(c.why << " (float bits 0x" << std::hex << bits(c.f) << ")");
    CHECK(float_to_half(c.f) == c.h);
  }
  // half -> float, exact values
  CHECK(half_to_float(0x0001) == tiny);
  CHECK(half_to_float(0x03ff) == 1023 * tiny);
  CHECK(half_to_float(0x0400) == std::ldexp(1.0f, -14));
  CHECK(half_to_float(0x7bff) == 65504.0f);
  CHECK(half_to_float(0x3555) == 0.333251953125f);
  CHECK(half_to_float(0x7c00) == INFINITY);
  CHECK(half_to_float(0xfc00) == -INFINITY);
  CHECK(bits(half_to_float(0x8000)) == 0x80000000u);  // -0
  CHECK(std::isnan(half_to_float(0x7e00)));
  CHECK(std::isnan(half_to_float(0xfc01)));
  // NaN stays NaN (quiet), whatever its payload
  for (uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xffc00000u, 0x7fbfffffu}) {
    uint16_t h = float_to_half(from_bits(nan));
    CHECK((h & 0x7c00) == 0x7c00);
    CHECK((h & 0x03ff) != 0);
    CHECK(std::isnan(half_to_float(h)));
  }
}

TEST_CASE("half: every half round-trips through float exactly") {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = half_to_float((uint16_t)h);
    bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff);
    if (nan) {
      CHECK(std::isnan(f));
      continue;
    }
    if (float_to_half(f) != h) {
      INFO("half 0x" << std::hex << h);
      CHECK(float_to_half(f) == h);
    }
  }
}

TEST_CASE("float_to_half matches an independent nearest-even search on midpoints and random floats") {
  // The finite non-negative halves in increasing order are 0x0000..0x7bff; their values come from
  // half_to_float (verified above by hand and by the round trip).
  std::vector<double> value(0x7c00);
  for (uint32_t h = 0; h < 0x7c00; ++h) value[h] = half_to_float((uint16_t)h);
  auto nearest = [&](double x) -> uint16_t {  // x >= 0, round to nearest, ties to even
    if (x >= 65520.0) return 0x7c00;
    size_t hi = std::lower_bound(value.begin(), value.end(), x) - value.begin();
    if (hi == value.size()) return 0x7bff;
    if (value[hi] == x || hi == 0) return (uint16_t)hi;
    size_t lo = hi - 1;
    double dl = x - value[lo], dh = value[hi] - x;
    if (dl < dh) return (uint16_t)lo;
    if (dh < dl) return (uint16_t)hi;
    return (uint16_t)((lo & 1) ? hi : lo);
  };
  size_t bad = 0;
  auto check = [&](float f) {
    uint16_t want = nearest(std::fabs((double)f)) | (std::signbit(f) ? 0x8000 : 0);
    uint16_t got = float_to_half(f);
    if (got != want && bad++ < 10) {
      INFO("float " << f << " bits 0x" << std::hex << bits(f) << " want 0x" << want << " got 0x" << got);
      CHECK(got == want);
    }
  };
  // Every midpoint between neighbouring halves (exact in float: 12 significant bits), and the
  // floats one ulp either side of it.
  for (uint32_t h = 0; h + 1 < 0x7c00; ++h) {
    float mid = (float)((value[h] + value[h + 1]) / 2);
    REQUIRE((double)mid == (value[h] + value[h + 1]) / 2);
    for (float f : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, INFINITY)}) {
      check(f);
      check(-f);
    }
  }
  // Random floats over the whole exponent range that matters (2^-30 .. 2^17).
  for (uint64_t i = 0; i < 200000; ++i) {
    Philox4 r = philox4x32(i, 7, 2024);
    uint32_t exp = 97 + r.v[0] % 48;  // biased exponents 97..144
    check(from_bits((exp << 23) | (r.v[1] & 0x7fffffu) | (r.v[2] & 0x80000000u)));
  }
  CHECK(bad == 0);
}

TEST_CASE("float_to_bf16 rounds to nearest even, keeps NaN") {
  CHECK(float_to_bf16(1.0f) == 0x3f80);
  CHECK(float_to_bf16(-2.0f) == 0xc000);
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8)) == 0x3f80);      // tie -> even
  CHECK(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)) == 0x3f82);  // tie -> even
  CHECK(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)) == 0x3f81);
  CHECK(float_to_bf16(INFINITY) == 0x7f80);
  CHECK(float_to_bf16(std::numeric_limits<float>::max()) == 0x7f80);  // above the last midpoint
  CHECK(float_to_bf16(-0.0f) == 0x8000);
  CHECK(float_to_bf16(from_bits(0x00010000u)) == 0x0001);  // a subnormal, exact
  for (uint32_t nan : {0x7fc00000u, 0x7f800001u, 0xff800001u}) CHECK(std::isnan(bf16_to_float(float_to_bf16(from_bits(nan)))));
  CHECK(bf16_to_float(0x3f80) == 1.0f);
  CHECK(bf16_to_float(0x3e20) == 0.15625f);
  for (uint32_t h = 0; h < 65536; ++h) {  // every non-NaN bf16 round-trips
    float f = bf16_to_float((uint16_t)h);
    if (!std::isnan(f) && float_to_bf16(f) != h) {
      INFO("bf16 0x" << std::hex << h);
      CHECK(float_to_bf16(f) == h);
    }
  }
}

// ------------------------------------------------------------------ the format itself

TEST_CASE("checkpoint: a saved file follows the reference format's rules") {
  std::string dir = emotune::testing::temp_dir("ckpt_format");
  for (DType d : {DType::f32, DType::f16, DType::bf16}) {
    INFO(dtype_name(d));
    std::string path = dir + "/f.safetensors";
    auto tensors = sample_tensors();
    save_safetensors(path, tensors, kMeta, d);
    std::string bytes = read_bytes(path);
    REQUIRE(bytes.size() >= 8);
    uint64_t n = 0;  // little-endian u64
    for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
    REQUIRE(8 + n <= bytes.size());
    CHECK(n % 8 == 0);  // the writer pads the header so the data buffer is 8-byte aligned
    CHECK(bytes[8] == '{');
    auto header = nlohmann::json::parse(bytes.substr(8, n));  // throws (fails the test) if not JSON
    REQUIRE(header.is_object());
    CHECK(header.at("__metadata__") == nlohmann::json(kMeta));
    const size_t elem = d == DType::f32 ? 4 : 2;
    const uint64_t buffer = bytes.size() - 8 - n;
    std::vector<std::pair<uint64_t, uint64_t>> ranges;
    for (const auto& nt : tensors) {
      INFO(nt.name);
      REQUIRE(header.contains(nt.name));
      const auto& e = header.at(nt.name);
      CHECK(e.at("dtype") == dtype_name(d));
      CHECK(e.at("shape").get<Shape>() == nt.tensor.shape());
      uint64_t b = e.at("data_offsets")[0], en = e.at("data_offsets")[1];
      CHECK(en - b == (uint64_t)nt.tensor.numel() * elem);
      ranges.push_back({b, en});
      if (d == DType::f32 && nt.tensor.numel()) {  // raw little-endian float32 at those offsets
        std::vector<float> v(nt.tensor.numel());
        std::memcpy(v.data(), bytes.data() + 8 + n + b, en - b);
        CHECK(v == nt.tensor.to_vector());
      }
    }
    CHECK(header.size() == tensors.size() + 1);  // nothing else in the header
    std::sort(ranges.begin(), ranges.end());
    uint64_t pos = 0;
    for (auto [b, e] : ranges) {
      CHECK(b == pos);  // tiles: no gap, no overlap
      pos = e;
    }
    CHECK(pos == buffer);  // and no trailing bytes
  }
  // No metadata: no __metadata__ key at all.
  std::string path = dir + "/nometa.safetensors";
  save_safetensors(path, {{"x", Tensor::zeros({2})}}, {});
  std::string bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= (uint64_t)(uint8_t)bytes[i] << (8 * i);
  CHECK_FALSE(nlohmann::json::parse(bytes.substr(8, n)).contains("__metadata__"));
  CHECK(load_safetensors(path).metadata.empty());
}

TEST_CASE("checkpoint: a file written by the reference Python library loads with every value") {
  std::string path = emotune::testing::source_dir() + "/tests/data/safetensors/python_reference.safetensors";
  REQUIRE(fs::exists(path));
  Checkpoint ck = load_safetensors(path);
  CHECK(ck.metadata.at("arch") == "fixture");
  CHECK(ck.metadata.at("classes") == "[\"x\", \"y\"]");
  CHECK(ck.tensors.size() == 5);
  CHECK(ck.get("a.weight", {2, 3}).to_vector() == std::vector<float>{0.0f, -1.5f, 2.25f, 1e-3f, 65504.0f, -0.0f});
  CHECK(bits(ck.get("a.weight", {2, 3}).to_vector()[5]) == 0x80000000u);  // -0 kept
  CHECK(ck.get("b.half", {4}).to_vector() == std::vector<float>{1.0f, -2.0f, 0.5f, 65504.0f});
  CHECK(ck.get("c.bf16", {3}).to_vector() == std::vector<float>{1.0f, -3.0f, 0.15625f});
  CHECK(ck.get("d.scalar", {}).item() == 7.0f);
  CHECK(ck.get("e.empty", {0, 4}).numel() == 0);
}

// ------------------------------------------------------------------ malformed files

TEST_CASE("checkpoint: malformed files are refused naming the file and the field") {
  std::string dir = emotune::testing::temp_dir("ckpt_bad");
  std::string path = dir + "/bad.safetensors";
  // Loads `bytes` from `path` and returns the error text (empty when it loaded).
  auto load_error = [&](const std::string& bytes) {
    write_bytes(path, bytes);
    std::string msg = error_of([&] { (void)load_safetensors(path); });
    CHECK(contains(msg, path));  // every message names the file
    return msg;
  };
  const std::string f4(16, '\0');  // four float32 zeros
  const std::string t4 = R"("t":{"dtype":"F32","shape":[4],"data_offsets":[0,16]})";

  SUBCASE("a well-formed hand-made file loads (the baseline for the cases below)") {
    write_bytes(path, st_file("{" + t4 + "}", f4));
    CHECK(load_safetensors(path).get("t", {4}).to_vector() == std::vector<float>(4, 0.0f));
  }
  SUBCASE("missing file") {
    std::string msg = error_of([&] { (void)load_safetensors(dir + "/nope.safetensors"); });
    CHECK(contains(msg, dir + "/nope.safetensors"));
    CHECK(contains(msg, "cannot open"));
  }
  SUBCASE("empty file") { CHECK(contains(load_error(""), "0 bytes")); }
  SUBCASE("7 bytes") { CHECK(contains(load_error("1234567"), "7 bytes")); }
  SUBCASE("header length beyond the file") {
    std::string msg = load_error(le64(500) + "{}");
    CHECK(contains(msg, "header length 500"));
    CHECK(contains(msg, "10 bytes"));
  }
  SUBCASE("header length over 100 MB") {
    std::string msg = load_error(le64(200ull << 20) + "{}");
    CHECK(contains(msg, "header length"));
    CHECK(contains(msg, "100 MB"));
    CHECK(contains(load_error(le64(~0ull) + "{}"), "100 MB"));  // no overflow on 2^64 - 1
  }
  SUBCASE("header is not JSON") { CHECK(contains(load_error(st_file("{not json", "")), "not valid JSON")); }
  SUBCASE("header is not an object") {
    CHECK(contains(load_error(st_file("[1, 2]", "")), "not a JSON object"));
    CHECK(contains(load_error(st_file("\"t\"", "")), "not a JSON object"));
  }
  SUBCASE("tensor entry is not an object") {
    CHECK(contains(load_error(st_file(R"({"t": 3})", "")), "tensor 't' is not an object"));
  }
  SUBCASE("tensor missing dtype / shape / data_offsets") {
    std::string msg = load_error(st_file(R"({"t":{"shape":[4],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "'dtype'"));
    msg = load_error(st_file(R"({"t":{"dtype":"F32","data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "'shape'"));
    msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":[4]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "'data_offsets'"));
  }
  SUBCASE("unknown dtype I64") {
    std::string msg = load_error(st_file(R"({"t":{"dtype":"I64","shape":[2],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "dtype 'I64'"));
    CHECK(contains(load_error(st_file(R"({"t":{"dtype":7,"shape":[4],"data_offsets":[0,16]}})", f4)),
                   "dtype is not a string"));
  }
  SUBCASE("negative, non-integer or non-array shape") {
    std::string msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "shape"));
    CHECK(contains(msg, "negative"));
    msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":[1.5, 2],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "shape"));
    CHECK(contains(msg, "non-integer"));
    msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":"4","data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "shape is not an array"));
    msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":[1099511627776, 1099511627776],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "too large"));
  }
  SUBCASE("bad data_offsets entries") {
    for (const char* off : {"[0]", "[0,16,32]", "[-1,15]", "\"0,16\"", "[0.0,16]"}) {
      INFO(off);
      std::string msg = load_error(st_file(std::string(R"({"t":{"dtype":"F32","shape":[4],"data_offsets":)") + off + "}}", f4));
      CHECK(contains(msg, "data_offsets"));
    }
    CHECK(contains(load_error(st_file(R"({"t":{"dtype":"F32","shape":[0],"data_offsets":[8,4]}})", f4)),
                   "data_offsets [8, 4]"));
  }
  SUBCASE("truncated file: offsets beyond the buffer") {
    std::string good_path = dir + "/good.safetensors";
    save_safetensors(good_path, sample_tensors(), kMeta);
    std::string good = read_bytes(good_path);
    for (size_t cut : {size_t(1), size_t(4), size_t(100)}) {
      INFO("cut " << cut);
      std::string msg = load_error(good.substr(0, good.size() - cut));
      CHECK(contains(msg, "data_offsets"));
      CHECK(contains(msg, "truncated"));
    }
    // cut inside the header
    CHECK(contains(load_error(good.substr(0, 40)), "runs past the end"));
  }
  SUBCASE("byte count does not match the shape") {
    std::string msg = load_error(st_file(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "tensor 't'"));
    CHECK(contains(msg, "16 bytes for shape [3]"));
    CHECK(contains(msg, "expected 12"));
    msg = load_error(st_file(R"({"t":{"dtype":"F16","shape":[4],"data_offsets":[0,16]}})", f4));
    CHECK(contains(msg, "expected 8"));
  }
  SUBCASE("overlapping offsets") {
    std::string msg = load_error(st_file(
        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", f4));
    CHECK(contains(msg, "overlapping"));
    CHECK(contains(msg, "'b'"));
  }
  SUBCASE("a gap between tensors") {
    std::string msg = load_error(st_file(
        R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", f4));
    CHECK(contains(msg, "'b' starts at byte 8, expected 4"));
    msg = load_error(st_file(R"({"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", f4));
    CHECK(contains(msg, "'b' starts at byte 8, expected 0"));
  }
  SUBCASE("trailing bytes") {
    std::string msg = load_error(st_file("{" + t4 + "}", f4 + "xyz"));
    CHECK(contains(msg, "3 trailing bytes"));
  }
  SUBCASE("__metadata__ must be an object of strings") {
    std::string msg = load_error(st_file(R"({"__metadata__":{"arch":"paper","epoch":3},)" + t4 + "}", f4));
    CHECK(contains(msg, "__metadata__.epoch"));
    CHECK(contains(msg, "not a string"));
    msg = load_error(st_file(R"({"__metadata__":["x"],)" + t4 + "}", f4));
    CHECK(contains(msg, "__metadata__ is not an object"));
  }
  SUBCASE("empty tensors may share their offset with the next tensor (as the reference writes them)") {
    write_bytes(path, st_file(
        R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"z":{"dtype":"F32","shape":[0],"data_offsets":[0,0]}})", f4));
    Checkpoint ck = load_safetensors(path);
    CHECK(ck.get("z", {0}).numel() == 0);
  }
}

TEST_CASE("checkpoint: get() and meta() name the file and the tensor") {
  std::string dir = emotune::testing::temp_dir("ckpt_get");
  std::string path = dir + "/g.safetensors";
  save_safetensors(path, {{"w", Tensor::zeros({2, 3})}}, {{"arch", "paper"}});
  Checkpoint ck = load_safetensors(path);
  CHECK(ck.find("w") != nullptr);
  CHECK(ck.find("nope") == nullptr);
  std::string msg = error_of([&] { (void)ck.get("nope", {2}); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "'nope'"));
  CHECK(contains(msg, "missing"));
  msg = error_of([&] { (void)ck.get("w", {3, 2}); });
  CHECK(contains(msg, "'w'"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
  msg = error_of([&] { (void)ck.meta("classes"); });
  CHECK(contains(msg, path));
  CHECK(contains(msg, "'classes'"));
}

TEST_CASE("checkpoint: save refuses bad or duplicate tensor names") {
  std::string dir = emotune::testing::temp_dir("ckpt_names");
  std::string path = dir + "/n.safetensors";
  CHECK(contains(error_of([&] { save_safetensors(path, {{"a", Tensor::zeros({1})}, {"a", Tensor::zeros({1})}}, {}); }), "'a'"));
  CHECK(contains(error_of([&] { save_safetensors(path, {{"__metadata__", Tensor::zeros({1})}}, {}); }), "__metadata__"));
  CHECK(contains(error_of([&] { save_safetensors(path, {{"", Tensor::zeros({1})}}, {}); }), "''"));
  CHECK_FALSE(fs::exists(path));  // nothing written
}

// ------------------------------------------------------------------ atomic writes

TEST_CASE("checkpoint: writing into a missing folder fails clearly and leaves nothing") {
  std::string dir = emotune::testing::temp_dir("ckpt_atomic_missing");
  std::string path = dir + "/no/such/folder/m.safetensors";
  std::string msg = error_of([&] { save_safetensors(path, {{"w", Tensor::zeros({2})}}, {}); });
  CHECK(contains(msg, dir + "/no/such/folder"));
  CHECK(contains(msg, "No such file or directory"));
  CHECK_FALSE(fs::exists(dir + "/no"));
  CHECK(fs::is_empty(dir));
}

TEST_CASE("checkpoint: writing over an existing file replaces it fully and leaves no temp file") {
  std::string dir = emotune::testing::temp_dir("ckpt_atomic_replace");
  std::string path = dir + "/m.safetensors";
  save_safetensors(path, {{"big", Tensor::from_vector({1000}, random_vector(1000, 9))}}, {{"v", "1"}});
  const auto big_size = fs::file_size(path);
  save_safetensors(path, {{"small", Tensor::from_vector({2}, {1.0f, 2.0f})}}, {{"v", "2"}});
  CHECK(fs::file_size(path) < big_size);
  Checkpoint ck = load_safetensors(path);  // a complete, valid file: no tail of the old one
  CHECK(ck.metadata.at("v") == "2");
  CHECK(ck.find("big") == nullptr);
  CHECK(ck.get("small", {2}).to_vector() == std::vector<float>{1.0f, 2.0f});
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  CHECK(names == std::vector<std::string>{"m.safetensors"});
  // write_file_atomic directly
  write_file_atomic(dir + "/raw.bin", "hello");
  CHECK(read_bytes(dir + "/raw.bin") == "hello");
  write_file_atomic(dir + "/raw.bin", "hi");
  CHECK(read_bytes(dir + "/raw.bin") == "hi");
  // An unwritable target (a folder of that name) fails and leaves the folder's contents alone.
  fs::create_directory(dir + "/taken");
  std::string msg = error_of([&] { write_file_atomic(dir + "/taken", "x"); });
  CHECK(contains(msg, dir + "/taken"));
  CHECK(fs::is_directory(dir + "/taken"));
  names.clear();
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  CHECK(names == std::vector<std::string>{"m.safetensors", "raw.bin", "taken"});
}
