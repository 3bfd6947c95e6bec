// What an explanation costs beside the prediction it explains, per face, in one process:
// the prediction (the inference graph's forward of one face, as predict runs it) and Grad-CAM
// (layers/gradcam.h: the training graph's eval forward split at the explained layer, and one
// backward from the class logit to it). Rounds alternate the two, so a machine whose speed
// drifts slows both alike; the medians and their ratio are printed as one JSON line:
//   bench_explain --model models/vgg.safetensors [--threads 1] [--rounds 15] [--per-round 8]
// The input is a real face (tests/data/app/face48.png), as in the Grad-CAM tests.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "apps/runtime_env.h"
#include "base/image.h"
#include "bench/provenance.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/runtime.h"
#include "layers/gradcam.h"
#include "layers/model.h"

using namespace emotune;

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

template <typename F>
double time_ms(F&& f, int n) {
  auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < n; ++i) f();
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / n;
}

}  // namespace

int main(int argc, char** argv) {
  std::string model = "models/vgg.safetensors";
  int threads = 1, rounds = 15, per_round = 8;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "bench_explain: %s needs a value\n", name);
        std::exit(2);
      }
      return argv[++i];
    };
    if (!std::strcmp(argv[i], "--model")) model = next("--model");
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(next("--threads"));
    else if (!std::strcmp(argv[i], "--rounds")) rounds = std::atoi(next("--rounds"));
    else if (!std::strcmp(argv[i], "--per-round")) per_round = std::atoi(next("--per-round"));
    else {
      std::fprintf(stderr, "bench_explain: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (threads < 1 || rounds < 1 || per_round < 1) {
    std::fprintf(stderr, "bench_explain: --threads, --rounds and --per-round must be >= 1\n");
    return 2;
  }
  emotune::runtime_start_from_env("bench_explain", argv);  // apps/runtime_env.h
  set_cpu_threads(threads);
  try {
    LoadedModel m = load_model(model);
    GrayImage face = load_gray_image(std::string(EMOTUNE_SOURCE_DIR) + "/tests/data/app/face48.png");
    std::vector<float> x(face.pixels.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = face.pixels[i] / 255.0f;
    auto predict = [&] { return predict_probabilities(m, x.data(), 1); };
    auto explain = [&] { return grad_cam(m, x.data()); };
    for (int i = 0; i < 3; ++i) predict(), explain();  // warm-up: caches, scratch, the allocator
    std::vector<double> p_ms, e_ms, ratio;
    for (int r = 0; r < rounds; ++r) {
      const double p = time_ms(predict, per_round), e = time_ms(explain, per_round);
      p_ms.push_back(p);
      e_ms.push_back(e);
      ratio.push_back(e / p);
    }
    const CpuPath path = cpu_path_current();
    nlohmann::json out = {{"bench", "explain"},
                          {"model", model},
                          {"arch", m.info.arch},
                          {"layer", grad_cam(m, x.data()).layer},
                          {"threads", threads},
                          {"rounds", rounds},
                          {"per_round", per_round},
                          {"predict_ms_median", median(p_ms)},
                          {"explain_ms_median", median(e_ms)},
                          {"explain_over_predict_median", median(ratio)},
                          {"explain_over_predict_min", *std::min_element(ratio.begin(), ratio.end())},
                          {"explain_over_predict_max", *std::max_element(ratio.begin(), ratio.end())},
                          {"cpu_path", std::string(cpu_isa_name(path.cpu_isa)) + ", OpenBLAS " + path.blas_core},
                          {"commit", bench::commit()}};
    std::printf("%s\n", out.dump().c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_explain: %s\n", e.what());
    return 1;
  }
  return 0;
}
