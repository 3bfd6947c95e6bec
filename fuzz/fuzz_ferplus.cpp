// Fuzz target: the FER+ vote reader (datasets/ferplus.cpp) and the labelling rules applied to
// every row it accepts, in both modes and with 7 and 8 classes.
#include <cmath>

#include "datasets/ferplus.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = emotune::fuzz::write_input(data, size);
  return emotune::fuzz::run_accepting_errors([&] {
    emotune::FerPlusTable table = emotune::load_ferplus(path);
    if (table.splits.size() != table.size() || table.named.size() != table.size()) std::abort();
    for (size_t i = 0; i < table.size(); ++i) {
      for (auto mode : {emotune::FerPlusMode::majority, emotune::FerPlusMode::distribution}) {
        for (int classes : {7, 8}) {
          emotune::FerPlusOptions o;
          o.mode = mode;
          o.num_classes = classes;
          emotune::FerPlusLabel l = emotune::ferplus_label(table.votes[i], table.named[i], o);
          if (!l.keep) continue;
          if (l.label < 0 || l.label >= classes) std::abort();
          if (mode == emotune::FerPlusMode::distribution) {
            double sum = 0;
            for (int c = 0; c < classes; ++c) sum += l.dist[c];
            if (std::fabs(sum - 1.0) > 1e-5) std::abort();  // float sum of <= 8 terms
          }
        }
      }
    }
  });
}
