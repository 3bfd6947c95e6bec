// Fuzz target: the FER-2013 CSV reader (datasets/fer2013_csv.cpp), plain, gzip or xz by magic
// bytes. The first byte picks the options (skip_bad, which splits) so both the strict and the
// skipping paths are explored; the rest is the file.
#include "datasets/dataset.h"
#include "datasets/fer2013_csv.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  emotune::LoadOptions options;
  options.format = emotune::DataFormat::csv;
  options.skip_bad = data[0] & 1;
  options.quiet = true;
  if (data[0] & 2) options.splits = {emotune::Split::public_test};
  const std::string& path = emotune::fuzz::write_input(data + 1, size - 1);
  return emotune::fuzz::run_accepting_errors([&] {
    emotune::LoadReport report;
    emotune::Dataset d = emotune::load_fer2013_csv(path, options, report);
    // What came out must be consistent, whatever came in.
    if (d.images.size() != d.size() * emotune::kFacePixels) std::abort();
    for (uint8_t label : d.labels)
      if (label >= d.num_classes) std::abort();
    if (!options.skip_bad && report.skipped != 0) std::abort();
  });
}
