// fer2013.csv reader: header `emotion,pixels,Usage` (columns found by name, in any order; Usage
// optional, rows without it count as Training as in Kaggle's train.csv), 2304 space-separated
// pixels per row. Plain, .gz or .xz (by magic bytes), streamed through a 1 MB window and parsed in
// one pass with std::from_chars: the real 270 MB file parses in a few seconds.
//
// Errors name file:line and field, e.g.
//   fer2013.csv:17: field 'pixels': 2303 values, expected 2304
//   fer2013.csv:18: field 'emotion': label 9 out of range 0..6
//   fer2013.csv:19: field 'pixels': value 5 is '12a', not an integer 0..255
//   fer2013.csv:20: field 'Usage': unknown Usage 'Validation' (expected Training, PublicTest or PrivateTest)
// With skip_bad such rows are counted and skipped instead. The pixels of rows whose split is not
// selected are not parsed (and so not checked).
// Each sample keeps its original data-row index (0-based, header excluded) for the FER+ join.
#pragma once
#include <string>

#include "datasets/dataset.h"

namespace emotune {

Dataset load_fer2013_csv(const std::string& path, const LoadOptions& options, LoadReport& report);

}  // namespace emotune
