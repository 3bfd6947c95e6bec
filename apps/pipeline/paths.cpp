#include "apps/pipeline/paths.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "base/error.h"

namespace emotune {
namespace fs = std::filesystem;

namespace {

bool has_image_extension(const fs::path& p) {
  std::string e = p.extension().string();
  for (char& c : e) c = (char)std::tolower((unsigned char)c);
  // The formats load_gray_image decodes (base/image.cpp compiles only these).
  for (const char* ok : {".jpg", ".jpeg", ".png", ".bmp", ".gif"})
    if (e == ok) return true;
  return false;
}

}  // namespace

std::string resolve_default_path(const std::string& relative) {
  std::error_code ec;
  if (fs::exists(relative, ec)) return relative;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    // <repo>/build-x/bin/emotune or <repo>/build-x/tests/... : look up to three levels up.
    fs::path dir = exe.parent_path();
    for (int up = 0; up < 4 && !dir.empty(); ++up, dir = dir.parent_path()) {
      fs::path candidate = dir / relative;
      if (fs::exists(candidate, ec)) return candidate.string();
      if (dir == dir.parent_path()) break;
    }
  }
  return relative;
}

std::string resolve_option_path(const std::string& given, const char* default_relative) {
  return given == default_relative ? resolve_default_path(given) : given;
}

std::vector<std::string> expand_image_paths(const std::vector<std::string>& args) {
  std::vector<std::string> out;
  for (const std::string& a : args) {
    std::error_code ec;
    if (fs::is_directory(a, ec)) {
      std::vector<std::string> files;
      for (const auto& entry : fs::directory_iterator(a, ec))
        if (entry.is_regular_file(ec) && has_image_extension(entry.path()))
          files.push_back(entry.path().string());
      if (ec) throw Error(a + ": cannot list folder (" + ec.message() + ")");
      if (files.empty())
        throw Error(a + ": folder holds no image files (.jpg .jpeg .png .bmp .gif)");
      std::sort(files.begin(), files.end());
      out.insert(out.end(), files.begin(), files.end());
    } else if (fs::exists(a, ec)) {
      out.push_back(a);
    } else {
      throw Error(a + ": no such file or folder");
    }
  }
  return out;
}

}  // namespace emotune
