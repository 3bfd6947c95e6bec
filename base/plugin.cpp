#include "base/plugin.h"

#include <dlfcn.h>

#include <filesystem>

#include "base/error.h"

namespace emotune {

namespace fs = std::filesystem;

std::string plugin_path(const std::string& file) {
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (ec) return file;  // no /proc: leave it to the loader's search path
  return (exe.parent_path().parent_path() / "lib" / "emotune" / file).string();
}

void* plugin_open(const std::string& file, const std::string& what) {
  const std::string path = plugin_path(file);
  // RTLD_LOCAL: the plugin's libraries (FFmpeg, cuBLAS) stay out of the global symbol scope.
  // dlopen of a file that is already loaded (a CUDA test links the backend) returns that copy.
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    std::error_code ec;
    const bool exists = fs::exists(path, ec);
    throw Error(what + ": cannot load the plugin " + path + ": " +
                (exists ? std::string(why ? why : "unknown dlopen error")
                        : std::string("no such file (it is built with emotune and must stay in "
                                      "lib/emotune/ beside the bin/ folder of the executable)")));
  }
  return handle;
}

void* plugin_symbol(void* handle, const char* name, const std::string& file) {
  dlerror();
  void* p = dlsym(handle, name);
  if (!p) throw Error(file + ": plugin has no symbol " + name + " (built from another emotune?)");
  return p;
}

}  // namespace emotune
