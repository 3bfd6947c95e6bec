// The training loop end to end on the CPU, on a small generated FER-2013 CSV:
// a short run writes its folder; a run killed with SIGKILL and resumed ends bit-identical to an
// uninterrupted one; each epoch steps with the schedule's lr and records that lr; an exploding
// loss stops with the step named and the last checkpoint intact; config errors name the key.
#include <doctest/doctest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <thread>

#include "apps/train/config.h"
#include "apps/train/history.h"
#include "apps/train/holdout.h"
#include "apps/train/trainer.h"
#include "engine/checkpoint.h"
#include "engine/runtime.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"
#include "tests/train_testing.h"

namespace fs = std::filesystem;
using namespace emotune;

namespace {

std::vector<float> all_values(const std::string& path) {
  Checkpoint ck = load_safetensors(path);
  std::vector<float> out;
  for (const auto& nt : ck.tensors) {
    auto v = nt.tensor.to_vector();
    out.insert(out.end(), v.begin(), v.end());
  }
  return out;
}

// The trainable parameters of `net`'s shape read from a checkpoint (buffers and optimizer state
// left out), or `net`'s own values when `path` is empty.
std::map<std::string, std::vector<float>> parameter_values(Module& net, const std::string& path) {
  std::map<std::string, std::vector<float>> out;
  Checkpoint ck;
  if (!path.empty()) ck = load_safetensors(path);
  for (const ParamRef& p : net.parameters())
    out[p.name] = path.empty() ? p.tensor.to_vector() : ck.get(p.name, p.tensor.shape()).to_vector();
  return out;
}

double max_abs_diff(const std::map<std::string, std::vector<float>>& a,
                    const std::map<std::string, std::vector<float>>& b) {
  double worst = 0;
  for (const auto& [name, va] : a) {
    const std::vector<float>& vb = b.at(name);
    REQUIRE(va.size() == vb.size());
    for (size_t i = 0; i < va.size(); ++i) worst = std::max(worst, std::fabs((double)va[i] - vb[i]));
  }
  return worst;
}

// The lr column of metrics.csv, as written.
std::vector<std::string> recorded_lrs(const std::string& run_dir) {
  std::ifstream csv(run_dir + "/metrics.csv");
  std::string line;
  std::getline(csv, line);  // header
  std::vector<std::string> out;
  while (std::getline(csv, line)) {
    size_t a = line.find(','), b = line.find(',', a + 1);
    out.push_back(line.substr(a + 1, b - a - 1));
  }
  return out;
}

}  // namespace

TEST_CASE("a short CPU run writes the whole run folder") {
  std::string dir = testing::temp_dir("train_short");
  testing::write_synthetic_csv(dir, 48, 14);
  TrainConfig c = testing::tiny_train_config(dir, "short");
  c.epochs = 2;
  TrainResult r = run_training(c);
  fs::path run = r.run_dir;
  for (const char* f : {"config.json", "metrics.csv", "curves.png", "confusion.png", "last.safetensors",
                        "best.safetensors", "model.safetensors", "val_metrics.json"})
    CHECK_MESSAGE(fs::exists(run / f), f);
  std::ifstream csv(run / "metrics.csv");
  std::string line;
  int lines = 0;
  while (std::getline(csv, line)) ++lines;
  CHECK(lines == 3);  // header + one row per epoch
  CHECK(r.epochs_done == 2);
  // The exported model is fp16 and loads with its metadata.
  Checkpoint m = load_safetensors((run / "model.safetensors").string());
  CHECK(m.meta("arch") == "paper");
  CHECK(nlohmann::json::parse(m.meta("classes")).size() == 7);
  // A second run into the same folder is refused rather than overwriting it.
  CHECK_THROWS_WITH_AS(run_training(c), doctest::Contains("already holds a run"), Error);
}

TEST_CASE("a run killed with SIGKILL and resumed ends bit-identical to an uninterrupted run") {
  std::string dir = testing::temp_dir("train_resume");
  testing::write_synthetic_csv(dir, 48, 14);
  const std::string bin = testing::emotune_binary();
  INFO("build the emotune target first: " << bin);
  REQUIRE(fs::exists(bin));
  auto args = [&](const std::string& name) {
    return std::vector<std::string>{bin, "train", "--name", name, "--out", dir + "/runs", "--data",
                                    dir + "/tiny.csv", "--epochs", "3", "--batch-size", "8", "--lr", "0.001",
                                    "--augment", "crop=2,flip", "--threads", "1", "--seed", "5"};
  };
  // Uninterrupted.
  pid_t a = testing::spawn(args("whole"));
  int status = 0;
  waitpid(a, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);

  // Killed once the first epoch's checkpoint exists, i.e. somewhere in epoch 2.
  fs::path metrics = fs::path(dir) / "runs/killed/metrics.csv";
  pid_t b = testing::spawn(args("killed"));
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!fs::exists(metrics) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(b, SIGKILL);
  waitpid(b, &status, 0);
  REQUIRE(WIFSIGNALED(status));
  // The checkpoint left behind is complete and loads.
  std::string killed_last = dir + "/runs/killed/last.safetensors";
  REQUIRE(fs::exists(killed_last));
  CHECK_NOTHROW(load_safetensors(killed_last));

  pid_t c = testing::spawn({bin, "train", "--resume", dir + "/runs/killed"});
  waitpid(c, &status, 0);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  // Weights, buffers and optimizer state all equal to the bit.
  std::vector<float> whole = all_values(dir + "/runs/whole/last.safetensors");
  std::vector<float> resumed = all_values(killed_last);
  REQUIRE(whole.size() == resumed.size());
  CHECK(std::memcmp(whole.data(), resumed.data(), whole.size() * sizeof(float)) == 0);
}

TEST_CASE("each epoch steps with the lr the schedule gives it, and metrics.csv records that lr") {
  // A step schedule that drops the lr from 1e-3 to 1e-33 after epoch 1. Epoch 1 must move the
  // weights (Adam moves each by about lr per step); epoch 2 (resumed from epoch 1's checkpoint)
  // must leave them where they were. An optimizer stepping with any other lr than the schedule's
  // for the epoch, or a record of another lr, fails a check below.
  std::string dir = testing::temp_dir("train_lr");
  testing::write_synthetic_csv(dir, 16, 8);
  TrainConfig c = testing::tiny_train_config(dir, "lr");
  c.schedule = "step";
  c.step_size = 1;
  c.gamma = 1e-30;
  c.epochs = 1;
  const std::string run = run_training(c).run_dir;
  auto net = make_network(c.arch, c.classes, c.seed, c.init);  // the run's initial weights
  auto w0 = parameter_values(*net, "");
  auto w1 = parameter_values(*net, run + "/last.safetensors");
  c.epochs = 2;
  TrainResult r = run_training(c, run);
  REQUIRE(r.epochs_done == 2);
  auto w2 = parameter_values(*net, run + "/last.safetensors");
  // Two Adam steps at lr 1e-3 move most weights by ~1e-3; 1e-4 leaves a 10x margin.
  CHECK(max_abs_diff(w0, w1) > 1e-4);
  // Two Adam steps at lr 1e-33 move a weight by a few 1e-33 at most: 1e-20 is far above that and
  // far below what any lr >= 1e-15 would do.
  CHECK(max_abs_diff(w1, w2) < 1e-20);
  CHECK(recorded_lrs(run) == std::vector<std::string>{"0.001", "1e-33"});
}

TEST_CASE("an exploding loss stops training, names the step and keeps the last good checkpoint") {
  std::string dir = testing::temp_dir("train_explode");
  testing::write_synthetic_csv(dir, 32, 7);
  TrainConfig c = testing::tiny_train_config(dir, "explode");
  c.optimizer = "sgd";
  c.momentum = 0.9;
  c.lr = 1e6;  // diverges within a few steps
  c.epochs = 2;
  CHECK_THROWS_WITH_AS(run_training(c), doctest::Contains("training stopped at epoch 1, step"), Error);
  CHECK_FALSE(fs::exists(fs::path(dir) / "runs/explode/last.safetensors"));
}

TEST_CASE("fewer training samples than one batch is an error, not an epoch that trains nothing") {
  std::string dir = testing::temp_dir("train_no_batch");
  testing::write_synthetic_csv(dir, 32, 7);
  TrainConfig c = testing::tiny_train_config(dir, "nobatch");
  c.batch_size = 512;
  CHECK_THROWS_WITH_AS(run_training(c), doctest::Contains("make no batch of 512"), Error);
}

TEST_CASE("config errors name the key and the file") {
  std::string dir = testing::temp_dir("train_config");
  std::ofstream(dir + "/bad.json") << R"({"epochs": "ten"})";
  CHECK_THROWS_WITH_AS(load_train_config(dir + "/bad.json"),
                       doctest::Contains("bad.json: config key 'epochs' must be of type int"), Error);
  std::ofstream(dir + "/unknown.json") << R"({"epochz": 10})";
  CHECK_THROWS_WITH_AS(load_train_config(dir + "/unknown.json"), doctest::Contains("unknown config key 'epochz'"),
                       Error);
  TrainConfig c;
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("'data' is required"), Error);
  // Every shipped config parses and validates (all of configs/, so a new one is covered too).
  int configs = 0;
  for (const auto& entry : std::filesystem::directory_iterator(testing::source_dir() + "/configs")) {
    if (entry.path().extension() != ".json") continue;
    INFO(entry.path().string());
    TrainConfig k = load_train_config(entry.path().string());
    CHECK_NOTHROW(k.validate());
    ++configs;
  }
  CHECK(configs >= 6);
}

TEST_CASE("a reference curve: percent or fractions, gaps, and errors naming the file and line") {
  std::string dir = testing::temp_dir("train_reference");
  std::ofstream(dir + "/pct.csv") << "epoch,seed (Keras)\n1,25.61\n2,27.77\n\n30,64.43\n";
  ReferenceCurve r = read_reference_curve(dir + "/pct.csv");
  CHECK(r.label == "seed (Keras)");
  REQUIRE(r.percent.size() == 30);
  CHECK(r.percent[0] == doctest::Approx(25.61));
  CHECK(r.percent[29] == doctest::Approx(64.43));
  CHECK(std::isnan(r.percent[2]));
  std::ofstream(dir + "/frac.csv") << "epoch,other\r\n2,0.5\r\n1,0.25\r\n";
  ReferenceCurve f = read_reference_curve(dir + "/frac.csv");
  REQUIRE(f.percent.size() == 2);
  CHECK(f.percent[0] == doctest::Approx(25.0));
  CHECK(f.percent[1] == doctest::Approx(50.0));
  auto fails = [&](const std::string& text, const std::string& message) {
    std::ofstream(dir + "/bad.csv") << text;
    CHECK_THROWS_WITH_AS(read_reference_curve(dir + "/bad.csv"), doctest::Contains(message.c_str()), Error);
  };
  fails("", "bad.csv:1: empty file");
  fails("step,acc\n1,20\n", "bad.csv:1: the header must be");
  fails("epoch,a\n1,20\n2,x\n", "bad.csv:3: accuracy \"x\"");
  fails("epoch,a\n0,20\n", "bad.csv:2: epoch \"0\"");
  fails("epoch,a\n1,20\n1,21\n", "bad.csv:3: epoch 1 appears twice");
  fails("epoch,a\n1,120\n", "bad.csv:2: accuracy \"120\"");
  fails("epoch,a\n", "no rows after the header");
  CHECK_THROWS_WITH_AS(read_reference_curve(dir + "/none.csv"), doctest::Contains("none.csv: cannot open"), Error);
}

TEST_CASE("a finished run resumed with --reference-curve redraws its curves beside it; other keys stay refused") {
  std::string dir = testing::temp_dir("train_reference_run");
  testing::write_synthetic_csv(dir, 48, 14);
  const std::string bin = testing::emotune_binary();
  REQUIRE(fs::exists(bin));
  const std::string run = dir + "/runs/ref";
  REQUIRE(testing::run_command({bin, "train", "--name", "ref", "--out", dir + "/runs", "--data", dir + "/tiny.csv",
                                "--epochs", "1", "--batch-size", "8", "--threads", "1"}) == 0);
  const auto slurp = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
  };
  const std::string before = slurp(run + "/curves.png"), weights = slurp(run + "/last.safetensors");
  std::ofstream(dir + "/ref.csv") << "epoch,reference\n1,90\n";
  CHECK(testing::run_command({bin, "train", "--resume", run, "--reference-curve", dir + "/ref.csv"}) == 0);
  CHECK(slurp(run + "/curves.png") != before);           // the reference point is drawn
  CHECK(slurp(run + "/last.safetensors") == weights);    // and nothing was trained
  CHECK(testing::run_command({bin, "train", "--resume", run, "--lr", "0.5"}) != 0);
  // A bad reference file stops the run before any training, naming the file.
  std::ofstream(dir + "/bad.csv") << "epoch\n";
  CHECK(testing::run_command({bin, "train", "--resume", run, "--reference-curve", dir + "/bad.csv"}) != 0);
  CHECK(slurp(run + "/last.safetensors") == weights);
}

TEST_CASE("export_epoch last: model.safetensors holds the last epoch's weights, without optimizer or resume state") {
  std::string dir = testing::temp_dir("train_export_last");
  testing::write_synthetic_csv(dir, 48, 14);
  TrainConfig c = testing::tiny_train_config(dir, "last");
  c.epochs = 3;
  c.export_epoch = "last";
  c.save_dtype = "F32";  // so that the exported values compare exactly
  TrainResult r = run_training(c);
  Checkpoint model = load_safetensors(r.run_dir + "/model.safetensors");
  Checkpoint last = load_safetensors(r.run_dir + "/last.safetensors");
  CHECK(model.meta("epoch") == "3");
  CHECK(model.metadata.count("train_state") == 0);
  size_t weights = 0;
  for (const auto& nt : last.tensors) {
    if (nt.name.rfind("optim.", 0) == 0) {
      CHECK_MESSAGE(model.find(nt.name) == nullptr, nt.name);
      continue;
    }
    ++weights;
    const Tensor* m = model.find(nt.name);
    REQUIRE_MESSAGE(m != nullptr, nt.name);
    CHECK(m->to_vector() == nt.tensor.to_vector());
  }
  CHECK(model.tensors.size() == weights);
  c.export_epoch = "first";
  CHECK_THROWS_WITH_AS(c.validate(), doctest::Contains("'export_epoch' must be best or last"), Error);
}

TEST_CASE("precision: a run trained in bf16 resumes in fp32 from its fp32 checkpoint") {
  if (!testing::isa_or_skip(runtime_bf16_path() != "none", "avx512_bf16", "bf16 training run")) return;
  std::string dir = testing::temp_dir("train_precision");
  testing::write_synthetic_csv(dir, 16, 8);
  TrainConfig c = testing::tiny_train_config(dir, "mixed");
  c.epochs = 1;
  c.precision = "bf16";
  const std::string run = run_training(c).run_dir;
  CHECK(runtime_precision() == "bf16");
  auto w1 = all_values(run + "/last.safetensors");
  c.epochs = 2;
  c.precision = "fp32";
  TrainResult r = run_training(c, run);
  CHECK(r.epochs_done == 2);
  CHECK(runtime_precision() == "fp32");
  auto w2 = all_values(run + "/last.safetensors");
  REQUIRE(w1.size() == w2.size());
  CHECK(w1 != w2);  // epoch 2 trained on from epoch 1's fp32 weights
  // And the same run from the same start in fp32 differs from the bf16 one: the switch is live.
  TrainConfig f = testing::tiny_train_config(dir, "fp32only");
  f.epochs = 1;
  CHECK(all_values(run_training(f).run_dir + "/last.safetensors") != w1);
}

TEST_CASE("stratified_holdout: disjoint, complete, per class round(fraction * count), seeded") {
  std::vector<uint8_t> labels;
  for (int c = 0; c < 7; ++c)
    for (int k = 0; k < 10 * (c + 1) + (c == 1 ? -9 : 0); ++k) labels.push_back((uint8_t)c);  // class 1: 11 faces
  const Holdout a = stratified_holdout(labels, 0.1, 3), b = stratified_holdout(labels, 0.1, 3);
  CHECK(a.train == b.train);
  CHECK(a.held_out == b.held_out);
  CHECK(stratified_holdout(labels, 0.1, 4).held_out != a.held_out);
  std::vector<int> seen(labels.size(), 0), held(7, 0), count(7, 0);
  for (size_t i : a.train) ++seen[i];
  for (size_t i : a.held_out) ++seen[i], ++held[labels[i]];
  for (uint8_t l : labels) ++count[l];
  for (int s : seen) CHECK(s == 1);
  for (int c = 0; c < 7; ++c) CHECK(held[c] == (int)std::llround(0.1 * count[c]));
  CHECK(std::is_sorted(a.train.begin(), a.train.end()));
  CHECK(stratified_holdout(labels, 0.0, 3).held_out.empty());
  CHECK_THROWS(stratified_holdout(labels, 1.0, 3));
}

TEST_CASE("val_fraction: validation on a slice of Training, PublicTest measured once at the end") {
  std::string dir = testing::temp_dir("train_holdout");
  testing::write_synthetic_csv(dir, 35, 14);  // 5 Training and 2 PublicTest faces a class
  TrainConfig c = testing::tiny_train_config(dir, "holdout");
  c.epochs = 2;
  c.val_fraction = 0.25;
  const TrainResult r = run_training(c);
  REQUIRE(fs::exists(r.run_dir + "/test_metrics.json"));
  const nlohmann::json t = nlohmann::json::parse(std::ifstream(r.run_dir + "/test_metrics.json"));
  CHECK(t["split"] == "PublicTest");
  CHECK(t["selected_on"] == "Training holdout 25%");
  CHECK(t["samples"].get<int>() == 14);
  CHECK(std::fabs(t["accuracy"].get<double>() - r.test_accuracy) < 1e-12);
  // The validation figures are the holdout's: round(0.25 * 5) = 1 face of each class.
  const nlohmann::json v = nlohmann::json::parse(std::ifstream(r.run_dir + "/val_metrics.json"));
  CHECK(v["samples"].get<int>() == 7);
}

TEST_CASE("mixup: a run with mixup trains on mixed batches (other weights than without), reproducibly") {
  std::string dir = testing::temp_dir("train_mixup");
  testing::write_synthetic_csv(dir, 32, 8);
  auto weights = [&](const std::string& name, double alpha) {
    TrainConfig c = testing::tiny_train_config(dir, name);
    c.epochs = 1;
    c.mixup = alpha;
    return all_values(run_training(c).run_dir + "/last.safetensors");
  };
  const auto plain = weights("plain", 0.0), mixed = weights("mixed", 0.4), again = weights("again", 0.4);
  CHECK(mixed != plain);
  CHECK(mixed == again);  // the same seed mixes the same pairs by the same lam
}
