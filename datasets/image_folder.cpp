#include "datasets/image_folder.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <vector>

#include "base/error.h"
#include "base/image.h"
#include "datasets/classes.h"

namespace emotune {

namespace {

namespace fs = std::filesystem;

std::vector<fs::path> sorted_entries(const fs::path& dir, bool want_dirs) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec);
  if (ec) throw Error(dir.string() + ": cannot list folder (" + ec.message() + ")");
  for (const auto& e : it) {
    bool is_dir = e.is_directory(ec);
    if (is_dir == want_dirs) out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

bool is_image_name(const fs::path& p) {
  std::string ext = p.extension().string();
  for (char& c : ext) c = (char)std::tolower((unsigned char)c);
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

void load_class_folder(const fs::path& dir, int cls, Split split, const LoadOptions& options,
                       LoadReport& report, Dataset& d) {
  for (const fs::path& file : sorted_entries(dir, false)) {
    if (!is_image_name(file)) continue;
    ++report.rows_seen;
    try {
      GrayImage img = load_gray_image(file.string(), options.max_image_pixels);
      if (img.width != kFaceSide || img.height != kFaceSide)
        img = resize_gray(img, kFaceSide, kFaceSide);
      d.push(img.pixels.data(), cls, split, -1, -1);
      d.files.push_back(file.string());
    } catch (const Error& e) {
      if (!options.skip_bad) throw;
      report.note_skip(e.what());
    }
  }
}

}  // namespace

Dataset load_image_folders(const std::string& root_name, const LoadOptions& options,
                           LoadReport& report) {
  fs::path root(root_name);
  std::error_code ec;
  if (!fs::exists(root, ec)) throw Error(root_name + ": no such folder");
  if (!fs::is_directory(root, ec)) throw Error(root_name + ": not a folder");
  std::vector<fs::path> subdirs = sorted_entries(root, true);
  if (subdirs.empty())
    throw Error(root_name + ": no split or class folders inside (expected <split>/<class>/*.png)");

  // Either <root>/<class>/ (root is one split) or <root>/<split>/<class>/.
  bool all_classes = std::all_of(subdirs.begin(), subdirs.end(), [](const fs::path& p) {
    return class_from_name(p.filename().string()) >= 0;
  });
  std::vector<std::pair<fs::path, Split>> split_dirs;
  if (all_classes) {
    Split s = Split::training;
    split_from_name(root.filename().string(), &s);
    split_dirs.push_back({root, s});
  } else {
    for (const fs::path& p : subdirs) {
      Split s;
      if (!split_from_name(p.filename().string(), &s))
        throw Error(p.string() + ": unknown split folder '" + p.filename().string() +
                    "' (accepted: " + accepted_split_names() + "; or class folders directly: " +
                    accepted_class_names() + ")");
      split_dirs.push_back({p, s});
    }
  }

  bool keep[kNumSplits] = {options.splits.empty(), options.splits.empty(), options.splits.empty()};
  for (Split s : options.splits) keep[(int)s] = true;

  Dataset d;
  d.source = root_name;
  d.num_classes = 7;
  for (const auto& [dir, split] : split_dirs) {
    if (!keep[(int)split]) continue;
    std::vector<fs::path> class_dirs = sorted_entries(dir, true);
    if (class_dirs.empty()) throw Error(dir.string() + ": no class folders inside");
    // Class folders in class order (then by name, for aliases of one class).
    std::vector<std::pair<int, fs::path>> classes;
    for (const fs::path& c : class_dirs) {
      int cls = class_from_name(c.filename().string());
      if (cls < 0)
        throw Error(c.string() + ": unknown class folder '" + c.filename().string() +
                    "' (accepted: " + accepted_class_names() + ")");
      if (cls == kContempt)
        throw Error(c.string() + ": contempt is not a FER-2013 class (only FER+ 8-class labels have it)");
      classes.push_back({cls, c});
    }
    std::sort(classes.begin(), classes.end());
    for (const auto& [cls, c] : classes) load_class_folder(c, cls, split, options, report, d);
  }
  return d;
}

}  // namespace emotune
