// What an emotune process loads. The video codecs (OpenCV videoio: FFmpeg, GStreamer, ~200
// libraries) and the CUDA backend (cudart, cuBLAS) are plugins in lib/emotune/, loaded by
// `emotune watch` and `--device cuda` only (base/plugin.h); each costs ~0.2 s of every start
// (docs/benchmarks.md). Here the real executable runs under the dynamic loader's trace
// (LD_DEBUG=files lists every library mapped, dlopen'ed ones too): --help, predict without and
// with face detection must map neither, so linking them back into emotune, or loading a plugin on
// the CPU path, fails this test. Then the plugins from an installed layout (bin/ + lib/emotune/),
// and a clear error, not a crash, when one is missing.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::contains;
namespace fs = std::filesystem;

namespace {

const std::vector<std::string> kPluginOnly = {
    "libopencv_videoio", "libavcodec", "libavformat", "libgstreamer", "libemotune_videoio",
    "libcudart", "libcublas", "libemotune_kernels_cuda"};

std::string src(const std::string& rel) { return testing::source_dir() + "/" + rel; }

struct Traced {
  int status = 0;
  std::string log;
  std::set<std::string> files;  // every library the loader mapped (file=... lines)
};

// Runs `args` with LD_DEBUG=files; stdout and stderr (the trace) into one log.
Traced run_traced(const std::vector<std::string>& args, const std::string& log_path) {
  testing::SpawnOptions o;
  o.log_path = log_path;
  o.before_exec = [] { setenv("LD_DEBUG", "files", 1); };
  Traced t;
  t.status = testing::run_command(args, o);
  t.log = testing::read_text(log_path);
  std::istringstream in(t.log);
  for (std::string line; std::getline(in, line);) {
    size_t at = line.find("file=");
    if (at == std::string::npos) continue;
    std::string f = line.substr(at + 5);
    t.files.insert(f.substr(0, f.find_first_of(" \t")));
  }
  return t;
}

std::string plugin_only_mapped(const Traced& t) {
  std::string found;
  for (const std::string& f : t.files)
    for (const std::string& bad : kPluginOnly)
      if (contains(f, bad)) found += f + " ";
  return found;
}

int exit_code(int status) { return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status); }

}  // namespace

TEST_CASE("startup: --help and predict map neither the video codecs nor the CUDA backend") {
  const std::string bin = testing::emotune_binary();
  const std::string dir = testing::temp_dir("startup");
  const std::string model = src("models/paper.safetensors");
  const std::vector<std::vector<std::string>> commands = {
      {bin, "--help"},
      {bin, "predict", "--no-detect", "--model", model, src("tests/data/app/face48.png")},
      {bin, "predict", "--model", model, src("examples/face.jpg")},  // dlib's HOG detector
  };
  for (const auto& args : commands) {
    std::string what = args[1] + (args.size() > 2 ? " " + args[2] : "");
    INFO("emotune " << what);
    Traced t = run_traced(args, dir + "/trace.log");
    CHECK(exit_code(t.status) == 0);
    // The trace itself works: the libraries every command needs are in it.
    CHECK(t.files.size() >= 5);
    bool openblas = false;
    for (const std::string& f : t.files) openblas |= contains(f, "libopenblas");
    CHECK(openblas);
    CHECK_MESSAGE(plugin_only_mapped(t).empty(), "mapped: " << plugin_only_mapped(t));
  }
}

TEST_CASE("startup: plugins load from lib/emotune beside an installed bin/, and a missing one is an error") {
  // <root>/bin/emotune (a hard link, so /proc/self/exe is this path) and <root>/lib/emotune/.
  const fs::path root = testing::temp_dir("startup_installed");
  fs::create_directories(root / "bin");
  fs::create_directories(root / "lib" / "emotune");
  const fs::path exe = root / "bin" / "emotune";
  std::error_code ec;
  fs::create_hard_link(testing::emotune_binary(), exe, ec);
  if (ec) fs::copy_file(testing::emotune_binary(), exe);
  const fs::path built = fs::path(testing::emotune_binary()).parent_path().parent_path() / "lib" / "emotune";
  const std::string model = src("models/paper.safetensors");
  const std::string log = (root / "run.log").string();

  SUBCASE("watch: the video plugin") {
    const fs::path plugin = root / "lib" / "emotune" / "libemotune_videoio.so";
    fs::copy_file(built / "libemotune_videoio.so", plugin);
    // An empty .avi: the plugin loads (from root/lib/emotune) and FFmpeg refuses the file.
    const std::string video = (root / "empty.avi").string();
    std::ofstream(video).close();
    const std::vector<std::string> args = {exe.string(), "watch", video, "--model", model};
    Traced t = run_traced(args, log);
    CHECK(exit_code(t.status) == 1);
    CHECK(contains(t.log, "emotune watch: error: " + video + ": "));
    CHECK_FALSE(contains(t.log, "cannot load the plugin"));
    CHECK(t.files.count(plugin.string()) == 1);
    fs::remove(plugin);
    t = run_traced(args, log);
    CHECK(exit_code(t.status) == 1);  // an error, not a signal
    CHECK(contains(t.log, "emotune watch: error: video input/output (OpenCV videoio): cannot load the plugin " +
                              plugin.string() + ": no such file"));
  }

  SUBCASE("predict --device cuda: the CUDA backend") {
    const fs::path plugin = root / "lib" / "emotune" / "libemotune_kernels_cuda.so";
    const std::vector<std::string> args = {exe.string(), "predict", "--device", "cuda", "--no-detect",
                                           "--model", model, src("tests/data/app/face48.png")};
    if (!cuda_built()) {
      Traced t = run_traced(args, log);
      CHECK(exit_code(t.status) == 1);
      CHECK(contains(t.log, "built without the CUDA backend"));
      return;
    }
    fs::copy_file(built / "libemotune_kernels_cuda.so", plugin);
    Traced t = run_traced(args, log);
    CHECK(t.files.count(plugin.string()) == 1);
    if (cuda_available()) CHECK(exit_code(t.status) == 0);
    else CHECK(contains(t.log, "no CUDA GPU is available"));
    fs::remove(plugin);
    t = run_traced(args, log);
    CHECK(exit_code(t.status) == 1);
    CHECK(contains(t.log, "device cuda: cannot load the plugin " + plugin.string() + ": no such file"));
  }
}
