// Shared by the fuzz targets (fuzz/fuzz_*.cpp). Each target defines LLVMFuzzerTestOneInput and
// treats emotune::Error as the one accepted way to refuse an input: the readers promise a clear
// message naming the file, line or field. Any other exception escapes, aborts the process and is
// reported as a finding, as are crashes, hangs, leaks and sanitizer reports.
//
// Built two ways (fuzz/CMakeLists.txt): with clang's libFuzzer for fuzzing (scripts/fuzz.sh), and
// with fuzz/replay_main.cpp in every build, where CTest replays the committed corpus
// (fuzz/corpus/<target>/) so each input that once found a bug stays a regression test.
#pragma once
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "base/error.h"

namespace emotune::fuzz {

// The readers under test take a path (they stream, sniff compression and name the file in
// messages), so the input is written to one per-process file, rewritten for every input.
inline const std::string& input_path() {
  // Leaked on purpose: the atexit handler that removes the file runs after static destructors.
  static const std::string& path = *[] {
    const char* dir = std::getenv("TMPDIR");
    std::string d = dir && *dir ? dir : "/tmp";
    auto* p = new std::string(d + "/emotune-fuzz-input." + std::to_string(::getpid()));
    std::atexit([] { ::unlink(input_path().c_str()); });
    return p;
  }();
  return path;
}

inline const std::string& write_input(const uint8_t* data, size_t size) {
  const std::string& path = input_path();
  FILE* f = std::fopen(path.c_str(), "wb");
  if (!f) std::abort();  // the harness itself is broken, not the reader
  if (size && std::fwrite(data, 1, size, f) != size) std::abort();
  std::fclose(f);
  return path;
}

// Runs `body`; an emotune::Error is the documented refusal. Its message must name the input.
template <class F>
int run_accepting_errors(F&& body) {
  try {
    body();
  } catch (const emotune::Error& e) {
    if (std::string(e.what()).empty()) std::abort();  // a refusal without a message is a bug
  }
  return 0;
}

}  // namespace emotune::fuzz
