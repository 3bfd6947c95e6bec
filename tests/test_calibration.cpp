// Temperature scaling (apps/train/calibration.h): the ECE and NLL on hand-computable inputs, the
// fit recovering a known temperature, the seeded stratified halves, the model file's temperature
// field, and end to end: `emotune train` ships a calibrated model, `emotune calibrate` writes one
// whose temperature predict applies, and `emotune evaluate` reports on the other half only.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

#include "apps/pipeline/pipeline.h"
#include "apps/train/calibration.h"
#include "apps/train/holdout.h"
#include "apps/train/trainer.h"
#include "base/image.h"
#include "base/preprocess.h"
#include "engine/checkpoint.h"
#include "layers/model.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"
#include "tests/train_testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using json = nlohmann::json;
using emotune::testing::contains;
using emotune::testing::run_emotune;

namespace {

const std::vector<std::string> kFer = {"angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"};

json read_json(const std::string& path) { return json::parse(testing::read_text(path)); }

}  // namespace

TEST_CASE("ECE and NLL: calibrated bins give 0, a known miscalibrated set its hand-computed value") {
  // Two bins, each with accuracy equal to its confidence: 0.75 (3 of 4 right), 0.5 (1 of 2; a tie
  // predicts the first class).
  const std::vector<float> calibrated = {0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f, 0.75f, 0.25f, 0.5f, 0.5f, 0.5f, 0.5f};
  const std::vector<int> labels = {0, 0, 0, 1, 0, 1};
  CalibrationStats s = calibration_stats(calibrated, labels, 2);
  CHECK(s.ece == 0.0);  // 0.75 and 0.5 are exact in float, so the gaps are exactly 0
  CHECK(s.bins.size() == 15);
  CHECK(s.bins[11].count == 4);  // 0.75 lies in (11/15, 12/15]
  CHECK(s.bins[7].count == 2);   // 0.5 lies in (7/15, 8/15]
  CHECK(s.accuracy == doctest::Approx(4.0 / 6));

  // Confidence 0.9 with half right (gap 0.4) and confidence 0.6 with all right (gap 0.4):
  // ECE = 2/4 * 0.4 + 2/4 * 0.4 = 0.4.
  const std::vector<float> probs = {0.9f, 0.1f, 0.9f, 0.1f, 0.4f, 0.6f, 0.4f, 0.6f};
  const std::vector<int> truth = {0, 1, 1, 1};
  s = calibration_stats(probs, truth, 2);
  // The inputs are float: 0.9f and 0.6f are 0.9 and 0.6 to within 3e-8.
  CHECK(s.ece == doctest::Approx(0.4).epsilon(1e-6));
  CHECK(expected_calibration_error(probs, truth, 2) == s.ece);
  const double nll = -(std::log(0.9) + std::log(0.1) + 2 * std::log(0.6)) / 4;
  CHECK(s.nll == doctest::Approx(nll).epsilon(1e-6));  // the same float rounding of the inputs

  // Full confidence lands in the last bin; a zero probability of the label is clipped at 1e-12.
  s = calibration_stats({1.0f, 0.0f}, {1}, 2);
  CHECK(s.bins[14].count == 1);
  CHECK(s.ece == 1.0);
  CHECK(s.nll == doctest::Approx(-std::log(1e-12)));
}

TEST_CASE("fit_temperature recovers the temperature the labels were drawn with, and minimises the NLL") {
  const int n = 20000, classes = 7;
  const double t0 = 2.5;
  const std::vector<float> logits = testing::random_vector(n * classes, 11, -6.0f, 6.0f);
  const std::vector<double> u = testing::random_vector_double(n, 12, 0.0, 1.0);
  std::vector<int> labels(n);
  double info = 0;  // Fisher information of beta = 1/T per face: Var of z under softmax(z / T0)
  for (int i = 0; i < n; ++i) {
    const float* z = logits.data() + (size_t)i * classes;
    std::vector<double> p(classes);
    double sum = 0, mean = 0, square = 0, cdf = 0;
    for (int k = 0; k < classes; ++k) sum += p[k] = std::exp(z[k] / t0);
    for (int k = 0; k < classes; ++k) {
      p[k] /= sum;
      mean += p[k] * z[k];
      square += p[k] * z[k] * z[k];
    }
    labels[i] = classes - 1;  // u above the rounded cdf's end
    for (int k = 0; k < classes; ++k)
      if (u[i] < (cdf += p[k])) {
        labels[i] = k;
        break;
      }
    info += square - mean * mean;
  }
  const double t = fit_temperature(logits, labels, classes);
  // The maximum-likelihood beta has standard error 1 / sqrt(n I), so T = 1/beta has about
  // T0^2 / sqrt(n I); 4 standard errors: the fixed seed passes or fails for ever, and a correct fit
  // lands outside with probability ~6e-5.
  const double se = t0 * t0 / std::sqrt(info);
  INFO("T = " << t << ", standard error " << se);
  CHECK(std::fabs(t - t0) < 4 * se);
  CHECK(se < 0.05);  // the test can tell 2.5 from its neighbours at all

  const double at_fit = mean_nll_at_temperature(logits, labels, classes, t);
  CHECK(at_fit < mean_nll_at_temperature(logits, labels, classes, 1.0));
  // A minimum: 1% either side is worse (by ~I (0.01 beta)^2 / 2 ~ 1e-6, far above double rounding).
  CHECK(at_fit < mean_nll_at_temperature(logits, labels, classes, t * 1.01));
  CHECK(at_fit < mean_nll_at_temperature(logits, labels, classes, t / 1.01));
  // Deterministic.
  CHECK(fit_temperature(logits, labels, classes) == t);

  // Labels that are always the largest logit: sharper is always better, so the search stops at its
  // lower bound (to the golden section's 1e-10 in log T).
  std::vector<int> argmax(n);
  for (int i = 0; i < n; ++i) {
    const float* z = logits.data() + (size_t)i * classes;
    argmax[i] = (int)(std::max_element(z, z + classes) - z);
  }
  CHECK(fit_temperature(logits, argmax, classes) == doctest::Approx(kMinTemperature).epsilon(1e-8));
  CHECK_THROWS_AS(fit_temperature({}, {}, classes), Error);
}

TEST_CASE("softmax_at_temperature: T divides the logits, views are averaged") {
  const std::vector<float> z = {1.0f, 2.0f, 3.0f, 0.0f, 0.0f, 0.0f};  // one face, two views
  const std::vector<float> p = softmax_at_temperature(z, 2, 3, 2.0);
  const double e[3] = {std::exp(0.5), std::exp(1.0), std::exp(1.5)};
  for (int k = 0; k < 3; ++k)  // float output of a double computation: 1 ulp of float
    CHECK(p[k] == doctest::Approx((e[k] / (e[0] + e[1] + e[2]) + 1.0 / 3) / 2).epsilon(1e-7));
}

TEST_CASE("stratified halves: disjoint, covering, balanced per class, seeded") {
  std::vector<uint8_t> labels;
  for (int c : {0, 0, 1, 5, 5, 2, 0, 1, 4, 5, 0, 2, 2, 0, 5, 5, 0, 0, 1, 2, 0, 0, 5})  // no class 3
    labels.push_back((uint8_t)c);
  for (int i = 0; i < 40; ++i) labels.push_back((uint8_t)(i % 7 == 3 ? 6 : i % 7));
  const SplitHalves h = stratified_halves(labels, 1);
  std::set<size_t> all;
  for (const auto& half : h.half) {
    CHECK(std::is_sorted(half.begin(), half.end()));
    all.insert(half.begin(), half.end());
  }
  CHECK(all.size() == labels.size());  // no index twice, none missing
  CHECK(h.half[0].size() + h.half[1].size() == labels.size());
  CHECK(std::abs((long)h.half[0].size() - (long)h.half[1].size()) <= 1);
  for (int c = 0; c < 7; ++c) {
    long count[2] = {0, 0};
    for (int k = 0; k < 2; ++k)
      for (size_t i : h.half[k]) count[k] += labels[i] == c;
    CHECK_MESSAGE(std::abs(count[0] - count[1]) <= 1, "class " << c);
  }
  const SplitHalves again = stratified_halves(labels, 1);
  CHECK(again.half[0] == h.half[0]);
  CHECK(stratified_halves(labels, 2).half[0] != h.half[0]);  // 63 faces: another seed, other halves
}

TEST_CASE("the model's temperature: read from the metadata, applied by predict, bad values named") {
  const std::string dir = testing::temp_dir("calibration_field");
  const LoadedModel plain = load_model(testing::paper_model_file(dir, "plain"));
  CHECK(plain.info.temperature == 1.0);
  CHECK(plain.info.calibration.empty());
  const LoadedModel one = load_model(testing::paper_model_file(dir, "one", {{"temperature", "1"}}));
  const LoadedModel hot = load_model(testing::paper_model_file(dir, "hot", {{"temperature", "0.5"}}));
  CHECK(hot.info.temperature == 0.5);

  const std::vector<float> x = testing::random_vector(2 * 48 * 48, 3, 0.0f, 1.0f);
  const auto p = predict_probabilities(plain, x.data(), 2);
  const auto p1 = predict_probabilities(one, x.data(), 2);
  const auto ph = predict_probabilities(hot, x.data(), 2);
  for (int i = 0; i < 2; ++i) {
    CHECK(testing::bit_equal(p1[i], p[i]));  // T = 1 is the uncalibrated softmax, to the bit
    // softmax(z / T) = softmax(log p / T): log p is z less a constant. The float exponents z / T
    // and the float probabilities round to ~1e-6 relative here (|z| < 10).
    std::vector<float> want(7);
    double sum = 0;
    for (int k = 0; k < 7; ++k) sum += want[k] = (float)std::exp(std::log((double)p[i][k]) / 0.5);
    for (float& v : want) v = (float)(v / sum);
    EMOTUNE_CHECK_CLOSE(testing::allclose(ph[i], want, 1e-7, 1e-5));
  }

  for (const std::string bad : {"0", "-1", "nan", "inf", "abc", "1.5x", "", "1e999"}) {
    const std::string path = testing::paper_model_file(dir, "bad", {{"temperature", bad}});
    const std::string msg = testing::error_of([&] { load_model(path); });
    INFO("temperature '" << bad << "': " << msg);
    CHECK(contains(msg, path));
    CHECK(contains(msg, "'temperature'"));
    CHECK(contains(msg, "finite number > 0"));
  }
}

TEST_CASE("choose_temperature: the NLL's T where it does not worsen the fit faces' top-label ECE, else 1") {
  // Three classes, every face the same logits (1, 0, -3): the top probability p is 0.721 at T = 1.
  // round(p n) faces are class 0 and the rest class 2, the least likely one: the top label is
  // calibrated at T = 1 (ECE = |round(p n)/n - p| <= 1/(2n)), but the NLL pays -log p2 = 4.3 for
  // each class-2 face and wants a softer T, which makes the top label under-confident.
  const int n = 1000, classes = 3;
  const std::vector<float> one = {1.0f, 0.0f, -3.0f};
  std::vector<float> logits;
  for (int i = 0; i < n; ++i) logits.insert(logits.end(), one.begin(), one.end());
  const double p = softmax_at_temperature(one, 1, classes, 1.0)[0];
  const int n0 = (int)std::lround(p * n);
  std::vector<int> labels(n, 2);
  std::fill(labels.begin(), labels.begin() + n0, 0);
  const TemperatureChoice worse = choose_temperature(logits, labels, classes);
  INFO("p = " << p << ", NLL's T " << worse.nll_temperature << ", ECE " << worse.fit_ece_at_1 << " -> "
              << worse.fit_ece_at_nll);
  CHECK(worse.nll_temperature > 1.2);  // the NLL does want a softer T
  CHECK(worse.fit_ece_at_1 <= 0.5 / n + 1e-9);
  CHECK(worse.fit_ece_at_nll > 0.02);  // the top probability drops by more than that
  CHECK(worse.temperature == 1.0);
  CHECK(worse.declined());
  // --keep-worse-ece: applied anyway.
  const TemperatureChoice forced = choose_temperature(logits, labels, classes, true);
  CHECK(forced.temperature == worse.nll_temperature);
  CHECK_FALSE(forced.declined());

  // Over-confident instead: the same logits, but only 45% class 0 and the rest split over classes 1
  // and 2. The NLL's T > 1 lowers the top probability towards 0.45, which the ECE rewards too.
  std::vector<int> over(n);
  for (int i = 0; i < n; ++i) over[i] = i < 450 ? 0 : 1 + i % 2;
  const TemperatureChoice kept = choose_temperature(logits, over, classes);
  INFO("over-confident: NLL's T " << kept.nll_temperature << ", ECE " << kept.fit_ece_at_1 << " -> "
                                  << kept.fit_ece_at_nll);
  CHECK(kept.nll_temperature > 1.2);
  CHECK(kept.fit_ece_at_nll < kept.fit_ece_at_1);
  CHECK(kept.temperature == kept.nll_temperature);
  CHECK_FALSE(kept.declined());

  // The record keeps the evidence and tells a declined calibration from one made before the rule.
  CalibrationRecord r;
  r.split = "PublicTest";
  r.choice = worse;
  const CalibrationRecord back = CalibrationRecord::from_json(r.to_json(), "test");
  CHECK(back.choice.declined());
  CHECK(back.choice.temperature == worse.temperature);
  CHECK(back.choice.nll_temperature == worse.nll_temperature);
  CHECK(back.choice.fit_ece_at_nll == worse.fit_ece_at_nll);
  CHECK(contains(calibration_summary(back), "declined"));
  json old = json::parse(r.to_json());
  old.erase("nll_temperature");
  old.erase("fit_ece");
  old.erase("declined");
  old.erase("rule");
  CHECK_FALSE(CalibrationRecord::from_json(old.dump(), "old").choice.declined());
}

TEST_CASE("train ships a calibrated model; calibrate writes one predict applies; evaluate reports the other half") {
  const std::string bin = testing::emotune_binary();
  INFO("build the emotune target first: " << bin);
  REQUIRE(fs::exists(bin));
  const std::string dir = testing::temp_dir("calibration_e2e");
  const std::string data = testing::write_synthetic_csv(dir, 70, 140);
  TrainConfig c = testing::tiny_train_config(dir, "cal");
  c.epochs = 1;
  const TrainResult run = run_training(c);

  // The exported model carries the temperature fitted at the end of training; best.safetensors
  // (what the run selected) is untouched.
  const std::string model = run.run_dir + "/model.safetensors";
  const Checkpoint trained = load_safetensors(model);
  CHECK(trained.dtype == DType::f16);
  REQUIRE(trained.metadata.count("temperature") == 1);
  const CalibrationRecord at_train = CalibrationRecord::from_json(trained.meta("calibration"), model);
  CHECK(at_train.split == "PublicTest");
  CHECK(at_train.seed == 5);
  CHECK(at_train.n_fit + at_train.n_report == 140);
  CHECK(load_model(model).info.temperature == at_train.choice.temperature);
  CHECK(load_safetensors(run.run_dir + "/best.safetensors").metadata.count("temperature") == 0);

  // A copy without them: the uncalibrated model.
  Checkpoint stripped = trained;
  stripped.metadata.erase("temperature");
  stripped.metadata.erase("calibration");
  const std::string plain = dir + "/plain.safetensors", calibrated = dir + "/calibrated.safetensors";
  save_safetensors(plain, stripped.tensors, stripped.metadata, DType::f16);

  REQUIRE(run_emotune("calibrate --model " + plain + " --data " + data + " --split PublicTest --seed 3 --out " +
                          calibrated + " --keep-worse-ece --json",
                      dir + "/calibrate.json") == 0);
  const json record = read_json(dir + "/calibrate.json");
  const Checkpoint cal = load_safetensors(calibrated);
  CHECK(cal.dtype == DType::f16);  // kept as the input stored it
  REQUIRE(cal.tensors.size() == stripped.tensors.size());
  for (size_t i = 0; i < cal.tensors.size(); ++i)
    CHECK(cal.tensors[i].tensor.to_vector() == stripped.tensors[i].tensor.to_vector());
  const CalibrationRecord r = CalibrationRecord::from_json(cal.meta("calibration"), calibrated);
  CHECK(r.choice.temperature == record["temperature"].get<double>());
  CHECK(r.seed == 3);
  CHECK(r.n_fit == 70);
  CHECK(r.n_report == 70);
  CHECK(r.after.nll <= r.before.nll + 0.05);  // fitted on the other half: at most a little worse
  CHECK(r.choice.temperature == r.choice.nll_temperature);  // --keep-worse-ece applies the NLL's T
  CHECK(record["declined"] == false);
  CHECK(record.contains("fit_ece"));
  const double t = std::stod(cal.meta("temperature"));
  CHECK(t == r.choice.temperature);
  CHECK(std::fabs(std::log(t)) > 1e-3);  // a real temperature, so the check below can fail

  // predict applies it: the probabilities are softmax(z / T) of the uncalibrated model's logits.
  const std::string face = testing::source_dir() + "/tests/data/app/face48.png";
  REQUIRE(run_emotune("predict --no-detect --json " + face + " --model " + plain, dir + "/p0.json") == 0);
  REQUIRE(run_emotune("predict --no-detect --json " + face + " --model " + calibrated, dir + "/p1.json") == 0);
  const json p0 = read_json(dir + "/p0.json")["images"][0]["faces"][0]["probabilities"];
  const json p1 = read_json(dir + "/p1.json")["images"][0]["faces"][0]["probabilities"];
  const LoadedModel m0 = load_model(plain), m1 = load_model(calibrated);
  const GrayImage img = load_gray_image(face);
  const std::vector<float> x = prepare_face_inputs(img, find_faces(img, nullptr, 0.1), m0.info.preprocess);
  const std::vector<float> q0 = predict_probabilities(m0, x.data(), 1)[0];
  const std::vector<float> q1 = predict_probabilities(m1, x.data(), 1)[0];
  std::vector<float> want(7);
  double sum = 0;
  for (int k = 0; k < 7; ++k) sum += want[k] = (float)std::exp(std::log((double)q0[k]) / t);
  for (float& v : want) v = (float)(v / sum);
  // Float exponents z / T and float probabilities: ~1e-6 relative for these small logits, and
  // a probability under 1e-7 is compared absolutely.
  EMOTUNE_CHECK_CLOSE(testing::allclose(q1, want, 1e-7, 1e-5));
  for (int k = 0; k < 7; ++k) {
    // The commands print these numbers to 6 decimals: half a unit of the last, and float noise.
    CHECK(std::fabs(p0[kFer[k]].get<double>() - q0[k]) <= 5.1e-7);
    CHECK(std::fabs(p1[kFer[k]].get<double>() - q1[k]) <= 5.1e-7);
  }

  // evaluate on the calibration split: the report half only, said so, and its numbers.
  REQUIRE(run_emotune("evaluate --model " + calibrated + " --data " + data +
                          " --split PublicTest --tta none --json --out " + dir + "/eval",
                      dir + "/eval.json") == 0);
  const json ev = read_json(dir + "/eval.json")["none"];
  CHECK(ev["samples"] == 70);
  CHECK(contains(ev["faces"].get<std::string>(), "other half only (70 faces)"));
  CHECK(ev["calibration"]["bins"] == 15);
  CHECK(ev["calibration"]["temperature"].get<double>() == t);
  // The same faces through the same forward, in other batches: float rounding only.
  CHECK(ev["calibration"]["after"]["ece"].get<double>() == doctest::Approx(r.after.ece).epsilon(1e-4));
  CHECK(ev["calibration"]["before"]["nll"].get<double>() == doctest::Approx(r.before.nll).epsilon(1e-4));
  CHECK(fs::file_size(dir + "/eval/reliability-none.png") > 1000);
  // Another split: every face, no note.
  REQUIRE(run_emotune("evaluate --model " + calibrated + " --data " + data + " --split Training --tta none --json",
                      dir + "/train.json") == 0);
  const json tr = read_json(dir + "/train.json")["none"];
  CHECK(tr["samples"] == 70);
  CHECK_FALSE(tr.contains("faces"));
}

TEST_CASE("calibrate --val-fraction: the temperature is fitted on the slice train --val-fraction held out") {
  const std::string dir = testing::temp_dir("calibration_holdout");
  const std::string data = testing::write_synthetic_csv(dir, 120, 30);
  const std::string model = testing::paper_model_file(dir, "m"), out = dir + "/m-cal.safetensors";
  REQUIRE(run_emotune("calibrate --model " + model + " --data " + data + " --split Training --val-fraction 0.25 " +
                          "--seed 2 --out " + out + " --json",
                      dir + "/cal.json") == 0);
  const CalibrationRecord r = CalibrationRecord::from_json(load_safetensors(out).meta("calibration"), out);
  CHECK(r.split == "Training");
  CHECK(r.holdout == 0.25);
  CHECK(r.seed == 2);
  // Exactly the faces the trainer holds out with that fraction and seed.
  TrainConfig c;
  c.data = data;
  const Dataset training = load_labelled_split(c, "Training", 0);
  const Holdout h = stratified_holdout(training.labels, 0.25, 2);
  CHECK(h.held_out.size() < training.size());
  CHECK((size_t)(r.n_fit + r.n_report) == h.held_out.size());
  // evaluate: PublicTest whole; Training whole with a note that it includes the slice.
  REQUIRE(run_emotune("evaluate --model " + out + " --data " + data + " --split PublicTest --tta none --json",
                      dir + "/pt.json") == 0);
  CHECK(read_json(dir + "/pt.json")["none"]["samples"] == 30);
  REQUIRE(run_emotune("evaluate --model " + out + " --data " + data + " --split Training --tta none --json",
                      dir + "/tr.json") == 0);
  CHECK(contains(read_json(dir + "/tr.json")["none"]["faces"].get<std::string>(), "held-out 25% of Training"));
  // A fraction out of range is refused.
  CHECK(run_emotune("calibrate --model " + model + " --data " + data + " --split Training --val-fraction 0.9 --out " +
                        out,
                    dir + "/bad.txt") == 105);  // CLI11's ValidationError
  CHECK(contains(testing::read_text(dir + "/bad.txt.err"), "--val-fraction"));
}
