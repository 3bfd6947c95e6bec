#include "apps/train/run_folder.h"

#include <cstdio>
#include <filesystem>

#include "base/error.h"
#include "engine/checkpoint.h"

namespace emotune {

namespace fs = std::filesystem;

RunPaths run_paths(const std::string& dir) {
  const fs::path run(dir);
  RunPaths p;
  p.dir = run.string();
  p.config = (run / "config.json").string();
  p.metrics = (run / "metrics.csv").string();
  p.curves = (run / "curves.png").string();
  p.confusion = (run / "confusion.png").string();
  p.val_metrics = (run / "val_metrics.json").string();
  p.test_metrics = (run / "test_metrics.json").string();
  p.last = (run / "last.safetensors").string();
  p.best = (run / "best.safetensors").string();
  p.model = (run / "model.safetensors").string();
  return p;
}

RunPaths open_run_folder(const TrainConfig& c, const std::string& resume_dir) {
  const bool resume = !resume_dir.empty();
  const RunPaths p = run_paths(resume ? resume_dir : (fs::path(c.out) / c.name).string());
  if (!resume && fs::exists(p.last))
    throw Error(p.dir + " already holds a run (last.safetensors); continue it with --resume " + p.dir +
                " or choose another --name");
  std::error_code ec;
  fs::create_directories(p.dir, ec);
  if (ec) throw Error("cannot create run folder " + p.dir + ": " + ec.message());
  if (int n = remove_stale_temp_files(p.dir))
    std::fprintf(stderr, "removed %d temporary file(s) left by a killed run in %s\n", n, p.dir.c_str());
  write_file_atomic(p.config, c.to_json().dump(2) + "\n");
  return p;
}

}  // namespace emotune
