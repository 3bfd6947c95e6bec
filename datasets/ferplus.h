// FER+ relabelling of FER-2013 (Barsoum et al., ICMI 2016, arXiv:1608.01041;
// microsoft/FERPlus, fer2013new.csv, MIT). Each fer2013.csv row got 10 crowd votes over
// neutral, happiness, surprise, sadness, anger, disgust, fear, contempt, unknown, NF (not a face);
// fer2013new.csv has the same rows in the same order, so row k of one is row k of the other.
//
// Rules implemented (FERPlus src/ferplus.py, _process_data, is the reference):
//  1. Outlier removal (drop_single_votes, default on, as FERPlus does in every mode): a vote
//     count of exactly 1 is set to 0 — one tagger out of ten is treated as noise.
//  2. Rows without an image name are dropped (drop_nameless, default on): FERPlus's
//     generate_training_data.py writes no image for them (173 not-a-face rows + 4 duplicates).
//  3. majority mode (FERPlus "majority"): the top count must be more than half of all remaining
//     votes (unknown and NF included), otherwise the row is dropped; a majority of unknown or NF
//     drops the row. The label is that class.
//  4. distribution mode (our simplification of FERPlus "crossentropy"/"probability"): the
//     target is the remaining emotion votes normalised to sum 1. A row is dropped when its top
//     count is unknown or NF (ties go to the emotion, as in FERPlus where emotions come first),
//     or when the kept emotion votes are not more than half of all remaining votes (FERPlus:
//     "less than 50% of the votes are integrated"). FERPlus's extra cap of at most 3 emotions
//     covering 75% of the votes is NOT applied: every remaining emotion vote is kept. The hard
//     label is the arg-max, ties broken in FER+ column order (neutral first, as numpy's argmax).
//  5. 7 classes: contempt is not a class. A row whose top emotion is contempt (majority:
//     the majority; distribution: the strict arg-max over the 8 emotions) is dropped, and
//     contempt votes are removed from the distribution (they still count in "all votes" for
//     the half rules). 8 classes: contempt is class 7.
// Labels come out in the emotune class order (datasets/classes.h), not FER+ column order.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "datasets/classes.h"
#include "datasets/dataset.h"

namespace emotune {

enum class FerPlusMode { majority, distribution };
// "majority" or "distribution"; throws emotune::Error otherwise.
FerPlusMode ferplus_mode_from_name(const std::string& name);

struct FerPlusOptions {
  FerPlusMode mode = FerPlusMode::majority;
  int num_classes = 7;          // 7 (contempt dropped) or 8
  bool drop_single_votes = true;
  bool drop_nameless = true;
};

using FerPlusVotes = std::array<uint8_t, kFerplusColumns>;  // file column order

struct FerPlusTable {
  std::string source;
  std::vector<FerPlusVotes> votes;  // one per fer2013.csv row, in file order
  std::vector<uint8_t> splits;      // Split of each row (its Usage)
  std::vector<uint8_t> named;       // 1 when the row has an image name
  std::vector<int32_t> lines;       // 1-based line in the file
  size_t size() const { return votes.size(); }
};

// Reads fer2013new.csv (plain, .gz or .xz). Checks the header and every field; errors name
// file:line and field.
FerPlusTable load_ferplus(const std::string& path);

struct FerPlusLabel {
  bool keep = false;
  const char* drop_reason = "";  // when !keep: "not a face", "unknown", "no majority", ...
  int label = -1;                // emotune class index
  std::array<float, kMaxClasses> dist{};  // emotune class order; num_classes entries used
};

// Applies the rules above to one row's votes.
FerPlusLabel ferplus_label(const FerPlusVotes& votes, bool named, const FerPlusOptions& options);

struct FerPlusJoinReport {
  int64_t kept = 0, dropped = 0;
  int64_t label_changed = 0;  // kept rows whose FER+ label differs from the FER-2013 label
};

// Replaces the labels of `d` (a CSV or packed data set, which keep original row indices) by the
// FER+ labels, sets soft targets in distribution mode, drops the rows the rules drop, and sets
// num_classes. Throws when a sample has no row index (image folders), a row index is beyond the
// table, or the Usage of a row disagrees with the sample's split (the wrong file).
Dataset apply_ferplus(const Dataset& d, const FerPlusTable& table, const FerPlusOptions& options,
                      FerPlusJoinReport* report = nullptr);

}  // namespace emotune
