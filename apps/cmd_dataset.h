// `emotune dataset stats`: per-split class counts of a data set (FER-2013 CSV / packed file /
// image folders, optionally relabelled with FER+), the balancing weights, and a PNG grid of faces
// exactly as the loader hands them to the network (preprocessed, augmented, mapped back to
// 0..255), so a person can look at what the network sees.
#pragma once
#include <cstdint>
#include <ostream>
#include <string>

namespace emotune {

struct DatasetStatsOptions {
  std::string data;                 // file or folder
  std::string format = "auto";      // auto | csv | packed | folders
  std::string ferplus;              // fer2013new.csv to relabel with (empty: none)
  std::string ferplus_mode = "majority";  // majority | distribution
  int classes = 7;                  // 7 or 8 (8 needs --ferplus)
  bool skip_bad = false;
  std::string grid;                 // PNG path (empty: no grid)
  int grid_size = 8;                // grid_size x grid_size faces
  int grid_scale = 2;               // pixel repetition in the PNG
  std::string grid_split = "Training";  // which split the grid faces come from
  std::string augment = "full";     // AugmentOptions::parse spec for the grid
  std::string balance = "none";     // none | sampler (draw the grid with the weighted sampler)
  uint64_t seed = 0;
  int64_t epoch = 0;
};

// Prints the report to `out`; writes the grid when asked. Throws emotune::Error on bad input.
void run_dataset_stats(const DatasetStatsOptions& options, std::ostream& out);

}  // namespace emotune
