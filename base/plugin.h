// The parts of emotune that are loaded only when used (dlopen), so that every other command starts
// without them: the video codecs of `emotune watch` (OpenCV videoio and FFmpeg, ~200 libraries)
// and, in CUDA builds, the CUDA backend (cudart and cuBLAS, whose constructors alone take ~0.2 s).
// docs/architecture.md ("Plugins") has the list and the reasons.
//
// A plugin lives in <folder of the running executable>/../lib/emotune/. That is
// <build>/lib/emotune for every program of a build tree (bin/emotune, tests/test_*, bin/bench_*),
// and <prefix>/lib/emotune beside <prefix>/bin/emotune when installed (cmake --install).
#pragma once
#include <string>

namespace emotune {

// The full path the plugin `file` is loaded from (the executable is read from /proc/self/exe).
std::string plugin_path(const std::string& file);

// dlopen(plugin_path(file)); the caller keeps the handle and never closes it. Throws
// emotune::Error naming `what` (what needs it), the path and dlerror() when the file is missing
// or cannot be loaded.
void* plugin_open(const std::string& file, const std::string& what);

// A symbol of a plugin opened by plugin_open; throws emotune::Error naming it and the file.
void* plugin_symbol(void* handle, const char* name, const std::string& file);

}  // namespace emotune
