// `emotune --version` prints the version; `emotune --version --verbose` adds the build and the CPU
// path in use (instruction sets detected, OpenBLAS kernels running and who chose them; see
// engine/runtime.h). Handled before CLI11 parses, which stops at --version.
#include <cstdio>
#include <cstring>
#include <string>

#include "apps/commands.h"
#include "engine/runtime.h"

#ifndef EMOTUNE_GIT_COMMIT
#define EMOTUNE_GIT_COMMIT "unknown"
#endif

namespace emotune {

std::string version_string() { return std::string("emotune ") + kEmotuneVersion + " (commit " + EMOTUNE_GIT_COMMIT + ")"; }
std::string version_commit() { return EMOTUNE_GIT_COMMIT; }

bool print_version_if_asked(int argc, char** argv) {
  bool version = false, verbose = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--version") == 0) version = true;
    else if (std::strcmp(argv[i], "--verbose") == 0 || std::strcmp(argv[i], "-v") == 0) verbose = true;
    else return false;  // anything else: CLI11 parses it (and rejects what is wrong)
  }
  if (!version || !verbose) return false;
  std::printf("%s\n", version_string().c_str());
#ifdef NDEBUG
  std::printf("build: release\n");
#else
  std::printf("build: debug\n");
#endif
  std::printf("%s", runtime_describe().c_str());
  return true;
}

}  // namespace emotune
