// Single-image CPU inference latency of the app, split by stage, for the shipped paper model:
//   decode      load_gray_image (file read + stb decode + BT.601 gray)
//   detect      FaceDetector::detect (the default detector, dlib HOG since docs/faces.md; 640 px
//               detection image), as predict runs it;
//               detect/listener: detect_listener, as recommend runs it
//   preprocess  crop with margin -> resize_gray to 48x48 -> Preprocess::apply (every face)
//   forward     predict_probabilities for one face (the network + softmax), batch 1
//   analyze     EmotionPipeline::analyze: all of the above, as `predict` runs it per image
//   cold        what one `emotune recommend` process does: load the cascade and the model, read
//               the mood table, analyze the image, rank (only process start-up is left out)
// plus the one-off loads (model, cascade, mood table) on their own.
//
// The model is models/paper.safetensors when it exists; otherwise a paper network with seeded
// random weights is written to a temporary checkpoint and used (same shapes, same cost), and the
// context line "emotune_model" says which. The image is examples/face.jpg (600x600,
// one face) unless --image PATH is given. Wall-clock time (UseRealTime): OpenMP/OpenBLAS threads.
// Targets (issue 6): forward < 10 ms, cold < 300 ms on this 2-core machine.
//
//   build-app/bin/bench_inference --benchmark_format=json --benchmark_out=/tmp/inference.json
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "apps/music/mood_table.h"
#include "apps/music/recommend.h"
#include "apps/pipeline/pipeline.h"
#include "apps/pipeline/recommendation.h"
#include "apps/runtime_env.h"
#include "bench/provenance.h"
#include "engine/checkpoint.h"
#include "layers/model.h"
#include "layers/nets/nets.h"

using namespace emotune;
namespace fs = std::filesystem;

namespace {

std::string g_image = std::string(EMOTUNE_SOURCE_DIR) + "/examples/face.jpg";
std::string g_model;
const std::string g_tracks = std::string(EMOTUNE_SOURCE_DIR) + "/data/music/tracks.csv";

std::string model_path(std::string* which) {
  std::string shipped = std::string(EMOTUNE_SOURCE_DIR) + "/models/paper.safetensors";
  if (fs::exists(shipped)) {
    *which = "models/paper.safetensors (shipped)";
    return shipped;
  }
  std::string tmp = (fs::temp_directory_path() / "emotune_bench_paper_random.safetensors").string();
  const std::vector<std::string> fer = {"angry", "disgust", "fear", "happy",
                                        "sad",   "surprise", "neutral"};
  save_safetensors(tmp, make_paper_net((int)fer.size(), 1)->state_dict(),
                   {{"arch", "paper"}, {"classes", nlohmann::json(fer).dump()},
                    {"preprocess", Preprocess{}.to_json()}});
  *which = "paper network, random weights (no models/paper.safetensors yet), fp32";
  return tmp;
}

void BM_decode(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(load_gray_image(g_image));
}

void BM_detect(benchmark::State& state) {
  FaceDetector detector;
  GrayImage img = load_gray_image(g_image);
  size_t faces = 0;
  for (auto _ : state) faces = detector.detect(img).size();
  state.counters["faces"] = (double)faces;
}

void BM_detect_listener(benchmark::State& state) {
  FaceDetector detector;
  GrayImage img = load_gray_image(g_image);
  size_t faces = 0;
  for (auto _ : state) faces = detector.detect_listener(img).size();
  state.counters["faces"] = (double)faces;
}

void BM_preprocess(benchmark::State& state) {
  FaceDetector detector;
  GrayImage img = load_gray_image(g_image);
  auto faces = find_faces(img, &detector, kDefaultFaceMargin);
  Preprocess pp;
  for (auto _ : state) benchmark::DoNotOptimize(prepare_face_inputs(img, faces, pp));
}

void BM_forward(benchmark::State& state) {
  LoadedModel m = load_model(g_model);
  GrayImage img = load_gray_image(g_image);
  FaceDetector detector;
  auto faces = find_faces(img, &detector, kDefaultFaceMargin);
  faces.resize(1);
  auto x = prepare_face_inputs(img, faces, m.info.preprocess);
  for (auto _ : state) benchmark::DoNotOptimize(predict_probabilities(m, x.data(), 1));
}

void BM_analyze(benchmark::State& state) {
  EmotionPipeline pipeline(g_model, Device::cpu, true, kDefaultFaceMargin);
  for (auto _ : state) benchmark::DoNotOptimize(pipeline.analyze(g_image));
}

void BM_load_model(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(load_model(g_model));
}

void BM_load_cascade(benchmark::State& state) {
  for (auto _ : state) FaceDetector detector;
}

void BM_read_tracks(benchmark::State& state) {
  size_t n = 0;
  for (auto _ : state) n = read_mood_table(g_tracks).tracks.size();
  state.counters["tracks"] = (double)n;
}

void BM_recommend_cold(benchmark::State& state) {
  for (auto _ : state) {
    MoodTable table = read_mood_table(g_tracks);
    EmotionPipeline pipeline(g_model, Device::cpu, true, kDefaultFaceMargin, /*listener=*/true);
    ImageResult r = pipeline.analyze(g_image);
    if (r.faces.empty()) {
      state.SkipWithError("no face in the benchmark image");
      break;
    }
    Recommendation rec = make_recommendation(g_image, r.faces, pipeline.model().info.classes, table,
                                             Policy::match, 5);
    benchmark::DoNotOptimize(rec.tracks.data());
  }
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_inference", argv, /*select_cpu_path=*/false);
  std::vector<char*> rest;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--image") == 0 && i + 1 < argc)
      g_image = argv[++i];
    else
      rest.push_back(argv[i]);
  }
  int rest_argc = (int)rest.size();
  std::string which;
  g_model = model_path(&which);

  // As the app runs (apps/main.cpp): OpenMP regions on one thread, OpenBLAS on all cores.
  const char* omp = std::getenv("OMP_NUM_THREADS");
  if (!omp) omp_set_num_threads(1);
  bench::add_provenance();  // after omp_set_num_threads: it records the thread count
  benchmark::AddCustomContext("emotune_model", which);
  benchmark::AddCustomContext("emotune_image", g_image);
  benchmark::AddCustomContext("emotune_omp_num_threads", omp ? omp : "1 (as emotune predict/recommend)");

  benchmark::RegisterBenchmark("decode", BM_decode)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("detect", BM_detect)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("detect/listener", BM_detect_listener)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("preprocess", BM_preprocess)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("forward/paper/batch1", BM_forward)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("analyze", BM_analyze)->Unit(benchmark::kMillisecond)->UseRealTime();
  benchmark::RegisterBenchmark("load/model", BM_load_model)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("load/cascade", BM_load_cascade)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("load/tracks", BM_read_tracks)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime();
  benchmark::RegisterBenchmark("recommend/cold", BM_recommend_cold)
      ->Unit(benchmark::kMillisecond)
      ->UseRealTime()
      ->Iterations(10);
  benchmark::Initialize(&rest_argc, rest.data());
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
