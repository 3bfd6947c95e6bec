// The real FER-2013 data when ../shared/data/fer2013 is present (skipped, visibly, otherwise):
// row and class counts of the packed Training + PublicTest file, cross-checked with SOURCE.md,
// and the FER+ vote file. About 4 s here (xz decoding of 48 MB dominates).
#include <doctest/doctest.h>

#include <cstdio>
#include <filesystem>
#include <algorithm>

#include "datasets/dataset.h"
#include "datasets/ferplus.h"
#include "tests/testing.h"

using namespace emotune;

namespace {

std::string fer_dir() { return testing::shared_dir() + "/data/fer2013"; }

bool have_data() {
  if (std::filesystem::exists(fer_dir() + "/fer2013-trainval.u8.xz")) return true;
  std::printf("SKIPPED (no %s): real FER-2013 checks\n", fer_dir().c_str());
  return false;
}

}  // namespace

TEST_CASE("real data: packed Training + PublicTest rows and per-class counts") {
  if (!have_data()) return;
  LoadOptions o;
  o.quiet = true;
  Dataset d = load_dataset(fer_dir() + "/fer2013-trainval.u8.xz", o);
  REQUIRE(d.size() == 32298);
  CHECK(d.count(Split::training) == 28709);
  CHECK(d.count(Split::public_test) == 3589);
  CHECK(d.count(Split::private_test) == 0);
  // Counted once from this file (class order angry, disgust, fear, happy, sad, surprise,
  // neutral); they are also the counts published for the Kaggle splits.
  std::vector<int64_t> train = d.class_counts(Split::training);
  std::vector<int64_t> pub = d.class_counts(Split::public_test);
  CHECK(train == std::vector<int64_t>{3995, 436, 4097, 7215, 4830, 3171, 4965});
  CHECK(pub == std::vector<int64_t>{467, 56, 496, 895, 653, 415, 607});
  // SOURCE.md gives totals over all three splits; what is left for PrivateTest must be
  // non-negative in every class and add up to its 3,589 rows.
  const std::vector<int64_t> total = {4953, 547, 5121, 8989, 6077, 4002, 6198};
  int64_t private_rows = 0;
  for (int c = 0; c < 7; ++c) {
    int64_t left = total[c] - train[c] - pub[c];
    CHECK(left >= 0);
    private_rows += left;
  }
  CHECK(private_rows == 3589);
  // Record k is fer2013.csv row k.
  CHECK(d.rows[0] == 0);
  CHECK(d.rows[32297] == 32297);
  CHECK(d.split(28708) == Split::training);
  CHECK(d.split(28709) == Split::public_test);

  // FER+ votes: 35,887 rows aligned to fer2013.csv, joined with the packed rows.
  {
    FerPlusTable t = load_ferplus(fer_dir() + "/fer2013new.csv");
    REQUIRE(t.size() == 35887);
    int64_t per_split[3] = {0, 0, 0};
    for (uint8_t s : t.splits) ++per_split[s];
    CHECK(per_split[0] == 28709);
    CHECK(per_split[1] == 3589);
    CHECK(per_split[2] == 3589);
    // 173 rows have no image name, all of them 10 NF votes. (SOURCE.md counts 177 "empty" names
    // with the 4 duplicates, but those 4 rows carry a name: another row's.)
    CHECK(std::count(t.named.begin(), t.named.end(), 0) == 173);

    FerPlusOptions maj;
    FerPlusJoinReport rep;
    Dataset m = apply_ferplus(d, t, maj, &rep);
    CHECK(rep.kept + rep.dropped == 32298);
    CHECK(m.size() == (size_t)rep.kept);
    // Regression values of the documented rules (datasets/ferplus.h) on this file: change them
    // only together with the rules.
    CHECK(rep.kept == 28127);
    CHECK(m.class_counts() == std::vector<int64_t>{2387, 143, 594, 8152, 3365, 3564, 9922});
    FerPlusOptions dist;
    dist.mode = FerPlusMode::distribution;
    dist.num_classes = 8;
    Dataset s = apply_ferplus(d, t, dist, &rep);
    CHECK(s.size() == 31891);
    CHECK(s.has_soft());
  }
}
