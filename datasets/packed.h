// The packed FER-2013 file ../shared/data/fer2013/fer2013-trainval.u8.xz: an xz stream (delta
// filter distance 48, then LZMA2) of 2306-byte records: emotion (0..6), usage (0 Training,
// 1 PublicTest, 2 PrivateTest), 2304 pixels row-major. Record k is fer2013.csv data row k (the
// file holds the Training and PublicTest rows, which come first in fer2013.csv, in order), so the
// record index is kept as the original row for the FER+ join. 48 MB instead of 270 MB of CSV, and
// it decodes in about a second. Plain (.u8) and gzip (.u8.gz) files are read the same way.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace emotune {

inline constexpr int kPackedRecordBytes = 2 + kFacePixels;  // 2306

// True for names ending in .u8, .u8.xz or .u8.gz.
bool is_packed_path(const std::string& path);
Dataset load_fer2013_packed(const std::string& path, const LoadOptions& options,
                            LoadReport& report);
// Writes `d` as a packed file (plain .u8 or xz-compressed .u8.xz, chosen by the name). Used by
// tests and to make small fixtures; rows are written in order with their split as usage.
void save_fer2013_packed(const Dataset& d, const std::string& path);

}  // namespace emotune
