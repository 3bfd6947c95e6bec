#include "datasets/packed.h"

#include <lzma.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <vector>

#include "base/error.h"
#include "datasets/byte_stream.h"

namespace emotune {

namespace {

bool ends_with(const std::string& s, const char* suffix) {
  size_t n = std::strlen(suffix);
  return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}

}  // namespace

bool is_packed_path(const std::string& path) {
  return ends_with(path, ".u8") || ends_with(path, ".u8.xz") || ends_with(path, ".u8.gz");
}

Dataset load_fer2013_packed(const std::string& path, const LoadOptions& options,
                            LoadReport& report) {
  ByteStream stream(path);
  bool keep[kNumSplits] = {options.splits.empty(), options.splits.empty(), options.splits.empty()};
  for (Split s : options.splits) keep[(int)s] = true;

  Dataset d;
  d.source = path;
  d.num_classes = 7;
  d.packed_records = true;
  // FER-2013 Training + PublicTest is 32,298 records; reserving avoids regrowing 74 MB.
  d.reserve(32768);
  constexpr size_t kBatch = 512;
  std::vector<uint8_t> buf(kBatch * kPackedRecordBytes);
  int32_t record = 0;
  for (;;) {
    size_t got = stream.read_full(buf.data(), buf.size());
    size_t whole = got / kPackedRecordBytes;
    for (size_t k = 0; k < whole; ++k, ++record) {
      const uint8_t* r = buf.data() + k * kPackedRecordBytes;
      ++report.rows_seen;
      std::string err;
      if (r[0] > 6)
        err = "emotion " + std::to_string(r[0]) + " out of range 0..6";
      else if (r[1] > 2)
        err = "usage " + std::to_string(r[1]) + " out of range 0..2";
      if (!err.empty()) {
        std::string msg = path + " record " + std::to_string(record) + ": " + err;
        if (!options.skip_bad) throw Error(msg);
        report.note_skip(msg);
        continue;
      }
      if (!keep[r[1]]) continue;
      d.push(r + 2, r[0], (Split)r[1], record, record);
    }
    if (got % kPackedRecordBytes) {
      std::string msg = path + " record " + std::to_string(record) + ": truncated (" +
                        std::to_string(got % kPackedRecordBytes) + " of " +
                        std::to_string(kPackedRecordBytes) + " bytes)";
      if (!options.skip_bad) throw Error(msg);
      ++report.rows_seen;
      report.note_skip(msg);
    }
    if (got < buf.size()) break;
  }
  if (record == 0 && report.skipped == 0) throw Error(path + ": empty packed file (no records)");
  return d;
}

void save_fer2013_packed(const Dataset& d, const std::string& path) {
  std::vector<uint8_t> raw(d.size() * kPackedRecordBytes);
  for (size_t i = 0; i < d.size(); ++i) {
    uint8_t* r = raw.data() + i * kPackedRecordBytes;
    r[0] = d.labels[i];
    r[1] = d.splits[i];
    std::memcpy(r + 2, d.image(i), kFacePixels);
  }
  std::vector<uint8_t> out;
  if (ends_with(path, ".xz")) {
    // The same filter chain as the shared file: vertical delta (distance 48), then LZMA2.
    lzma_options_delta delta{};
    delta.type = LZMA_DELTA_TYPE_BYTE;
    delta.dist = kFaceSide;
    lzma_options_lzma lz{};
    lzma_lzma_preset(&lz, 6);
    lzma_filter filters[] = {{LZMA_FILTER_DELTA, &delta}, {LZMA_FILTER_LZMA2, &lz},
                             {LZMA_VLI_UNKNOWN, nullptr}};
    out.resize(lzma_stream_buffer_bound(raw.size()));
    size_t pos = 0;
    lzma_ret r = lzma_stream_buffer_encode(filters, LZMA_CHECK_CRC64, nullptr, raw.data(),
                                           raw.size(), out.data(), &pos, out.size());
    if (r != LZMA_OK) throw Error(path + ": xz encoder failed");
    out.resize(pos);
  } else {
    out = std::move(raw);
  }
  std::string tmp = path + ".part";
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) throw Error(tmp + ": cannot create");
  bool ok = std::fwrite(out.data(), 1, out.size(), f) == out.size();
  ok = std::fclose(f) == 0 && ok;
  if (!ok || std::rename(tmp.c_str(), path.c_str()) != 0) {
    std::remove(tmp.c_str());
    throw Error(path + ": write failed");
  }
}

}  // namespace emotune
