// kernels/runtime.h on the CPU: aligned allocation, byte copies, device count. And the runtime
// settings (engine/runtime.h): read from the environment as before, checked, handed to the kernels.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <string>
#include <utility>
#include <vector>

#include "apps/runtime_env.h"
#include "base/error.h"
#include "engine/runtime.h"
#include "kernels/runtime.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;

TEST_CASE("runtime: 64-byte aligned allocations, zero size allowed, copy is a byte copy") {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(4096 + 4)}) {
    void* p = alloc_cpu(bytes);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    free_cpu(p);
  }
  const std::vector<float> src = random_vector(100, 5);
  std::vector<float> dst(100);
  copy_cpu(dst.data(), src.data(), 100 * sizeof(float));
  EMOTUNE_CHECK_CLOSE(allclose(dst, src, 0, 0));  // bytes: exact
  CHECK(device_count_cpu() == 1);
}

namespace {

// Sets (or with nullptr unsets) one variable for its lifetime, then restores what was there.
class EnvVar {
 public:
  EnvVar(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) old_ = old, had_ = true;
    if (value) setenv(name, value, 1);
    else unsetenv(name);
  }
  ~EnvVar() {
    if (had_) setenv(name_.c_str(), old_.c_str(), 1);
    else unsetenv(name_.c_str());
  }

 private:
  std::string name_, old_;
  bool had_ = false;
};

}  // namespace

TEST_CASE("runtime settings: read from the environment with the meanings the parts gave them") {
  {
    EnvVar g("EMOTUNE_GRAPH", nullptr), c("EMOTUNE_TRAIN_CONV", nullptr), y("EMOTUNE_CUDA_SYNC", nullptr),
        t("EMOTUNE_CONV_TUNE", nullptr), p("EMOTUNE_CPU_PATH", nullptr);
    const RuntimeSettings s = runtime_settings_from_env();
    CHECK(s.graph == "inference");
    CHECK(s.train_conv == "auto");
    CHECK(!s.cuda_sync);
    CHECK(s.cuda_conv_tune);
    CHECK(s.cpu_path.empty());
  }
  {
    // Empty values: EMOTUNE_TRAIN_CONV auto, EMOTUNE_CUDA_SYNC off, EMOTUNE_CONV_TUNE on, and an
    // empty EMOTUNE_GRAPH kept, so that runtime_configure refuses it as load_model did.
    EnvVar g("EMOTUNE_GRAPH", ""), c("EMOTUNE_TRAIN_CONV", ""), y("EMOTUNE_CUDA_SYNC", ""), t("EMOTUNE_CONV_TUNE", "");
    const RuntimeSettings s = runtime_settings_from_env();
    CHECK(s.graph.empty());
    CHECK(s.train_conv == "auto");
    CHECK(!s.cuda_sync);
    CHECK(s.cuda_conv_tune);
    CHECK_THROWS_WITH_AS(runtime_configure(s), doctest::Contains("EMOTUNE_GRAPH=''"), Error);
  }
  {
    EnvVar g("EMOTUNE_GRAPH", "training"), c("EMOTUNE_TRAIN_CONV", "winograd4"), y("EMOTUNE_CUDA_SYNC", "0"),
        t("EMOTUNE_CONV_TUNE", "0"), p("EMOTUNE_CPU_PATH", "generic");
    const RuntimeSettings s = runtime_settings_from_env();
    CHECK(s.graph == "training");
    CHECK(s.train_conv == "winograd4");
    CHECK(!s.cuda_sync);  // "0" is off
    CHECK(!s.cuda_conv_tune);
    CHECK(s.cpu_path == "generic");
  }
  {
    EnvVar y("EMOTUNE_CUDA_SYNC", "1"), t("EMOTUNE_CONV_TUNE", "yes");
    const RuntimeSettings s = runtime_settings_from_env();
    CHECK(s.cuda_sync);
    CHECK(s.cuda_conv_tune);  // anything but "0" is on
  }
}

TEST_CASE("runtime settings: runtime_configure checks every value and hands the conv mode to the kernels") {
  const RuntimeSettings saved = runtime_settings();
  RuntimeSettings s;
  const std::pair<const char*, TrainConvMode> modes[] = {{"auto", TrainConvMode::auto_},
                                                         {"im2col", TrainConvMode::im2col},
                                                         {"winograd", TrainConvMode::winograd2},
                                                         {"winograd4", TrainConvMode::winograd4}};
  for (const auto& [name, mode] : modes) {
    s.train_conv = name;
    runtime_configure(s);
    CHECK(train_conv_mode() == mode);
    CHECK(runtime_settings().train_conv == name);
  }
  // A wrong value names the variable and the allowed values, and changes nothing.
  RuntimeSettings wrong = s;
  wrong.train_conv = "bogus";
  CHECK_THROWS_WITH_AS(runtime_configure(wrong),
                       doctest::Contains("EMOTUNE_TRAIN_CONV: unknown value 'bogus' (auto, im2col, winograd, winograd4)"),
                       Error);
  CHECK(train_conv_mode() == TrainConvMode::winograd4);
  CHECK(runtime_settings().train_conv == "winograd4");
  wrong = s;
  wrong.graph = "fast";
  CHECK_THROWS_WITH_AS(runtime_configure(wrong), doctest::Contains("expected 'inference' (the default) or 'training'"),
                       Error);
  runtime_configure(saved);
}
