// The main of every test program. A program whose GPU cases were skipped for want of a GPU exits
// with 77, which CTest reports as "Skipped" (SKIP_RETURN_CODE): a CUDA test never passes silently.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include "apps/runtime_env.h"
#include "tests/testing.h"

int main(int argc, char** argv) {
  // As emotune's main: the runtime settings from the environment, and OpenBLAS kernels that match
  // the CPU even where the library does not know it (apps/runtime_env.h).
  emotune::runtime_start_from_env(argv[0], argv);
  doctest::Context context(argc, argv);
  int rc = context.run();
  if (context.shouldExit()) return rc;
  if (rc == 0 && emotune::testing::skipped_for_no_gpu() > 0) return 77;
  return rc;
}
