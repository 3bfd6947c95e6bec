// Ensembles (apps/train/ensemble.h): the average of the members' probabilities at their own
// temperatures against a hand computation, its top class where that differs from the average at
// T = 1, the checks on members that do not fit together, the faces an ensemble is reported on when
// its members were calibrated on halves of the split, and `emotune evaluate` with several --model.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "apps/train/ensemble.h"
#include "engine/checkpoint.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"
#include "tests/train_testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using json = nlohmann::json;
using emotune::testing::contains;
using emotune::testing::run_emotune;

namespace {

EvalResult result_of(std::vector<float> logits, std::vector<int> labels, int views = 1) {
  EvalResult r;
  r.logits = std::move(logits);
  r.labels = std::move(labels);
  r.views = views;
  return r;
}

// softmax(z / t) of one row, in double.
std::vector<double> softmax(const std::vector<double>& z, double t) {
  double mx = z[0], sum = 0;
  for (double v : z) mx = std::max(mx, v);
  std::vector<double> p(z.size());
  for (size_t i = 0; i < z.size(); ++i) sum += p[i] = std::exp((z[i] - mx) / t);
  for (double& v : p) v /= sum;
  return p;
}

}  // namespace

TEST_CASE("combine_ensemble: the mean of the members' probabilities at their temperatures") {
  // Face 0: A is sure of class 0 at T = 1 but at its T = 4 barely; B leans to class 1. At T = 1 the
  // mean picks class 0, at the members' temperatures class 1: the case where the two differ.
  // Face 1: both pick class 2. Labels: 1, 2, so the calibrated ensemble gets both right.
  const std::vector<double> a0 = {3.0, 1.0, 0.0}, a1 = {0.0, 0.5, 2.0};
  const std::vector<double> b0 = {0.0, 1.2, 0.0}, b1 = {0.1, 0.0, 1.5};
  auto flat = [](const std::vector<double>& x, const std::vector<double>& y) {
    std::vector<float> out(x.begin(), x.end());
    out.insert(out.end(), y.begin(), y.end());
    return out;
  };
  std::vector<EnsembleMember> members = {{"a.safetensors", 4.0, result_of(flat(a0, a1), {1, 2})},
                                         {"b.safetensors", 1.0, result_of(flat(b0, b1), {1, 2})}};
  const EnsembleResult e = combine_ensemble(members, 3);
  const std::vector<std::vector<double>> pa = {softmax(a0, 4), softmax(a1, 4)}, pb = {softmax(b0, 1), softmax(b1, 1)};
  const std::vector<std::vector<double>> qa = {softmax(a0, 1), softmax(a1, 1)};
  for (int i = 0; i < 2; ++i)
    for (int k = 0; k < 3; ++k) {
      // The members' probabilities are computed in double and stored as float, the mean likewise:
      // two float roundings of values <= 1, so 1e-7 bounds the difference.
      CHECK(std::fabs(e.probs[i * 3 + k] - (pa[i][k] + pb[i][k]) / 2) < 1e-7);
      CHECK(std::fabs(e.probs_at_1[i * 3 + k] - (qa[i][k] + pb[i][k]) / 2) < 1e-7);
    }
  // The premise of face 0: the mean at T = 1 picks class 0, the calibrated mean class 1.
  REQUIRE((qa[0][0] + pb[0][0]) > (qa[0][1] + pb[0][1]));
  REQUIRE((pa[0][1] + pb[0][1]) > (pa[0][0] + pb[0][0]));
  CHECK(e.metrics.accuracy == 1.0);
  CHECK(e.at_1.accuracy == 0.5);
  CHECK(e.calibrated.accuracy == 1.0);
  CHECK(e.calibrated.nll == doctest::Approx(-(std::log((pa[0][1] + pb[0][1]) / 2) + std::log((pa[1][2] + pb[1][2]) / 2)) / 2).epsilon(1e-6));
  CHECK(e.metrics.loss == e.calibrated.nll);
  // Each member alone: A picks 0 then 2 (half right), B picks 1 then 2 (all right).
  REQUIRE(e.member_metrics.size() == 2);
  CHECK(e.member_metrics[0].accuracy == 0.5);
  CHECK(e.member_metrics[1].accuracy == 1.0);
}

TEST_CASE("combine_ensemble: one member is that member; views are averaged first") {
  // Two views per face: each member's probability is the mean of its views' softmax at its T.
  const std::vector<float> logits = {1.0f, 0.0f, 0.5f, 2.0f, -1.0f, 0.3f, 0.2f, 0.1f};  // 2 faces x 2 views x 2
  const EnsembleResult e = combine_ensemble({{"one", 2.0, result_of(logits, {1, 0}, 2)}}, 2);
  const std::vector<float> want = softmax_at_temperature(logits, 2, 2, 2.0);
  REQUIRE(e.probs.size() == want.size());
  for (size_t i = 0; i < want.size(); ++i) CHECK(e.probs[i] == want[i]);  // one member: the mean divides by 1
  const Metrics m = compute_metrics(want, {1, 0}, 2);
  CHECK(e.metrics.accuracy == m.accuracy);
  CHECK(e.member_metrics[0].accuracy == m.accuracy);
}

TEST_CASE("combine_ensemble: members on other faces, labels or classes are refused by name") {
  const std::vector<float> two = {1.0f, 0.0f, 0.0f, 1.0f};
  CHECK_THROWS_WITH_AS(combine_ensemble({}, 2), doctest::Contains("at least one"), Error);
  CHECK_THROWS_WITH_AS(combine_ensemble({{"a", 1, result_of(two, {0, 1})}, {"b", 1, result_of(two, {1, 1})}}, 2),
                       doctest::Contains("b: evaluated on other faces or labels than a"), Error);
  CHECK_THROWS_WITH_AS(combine_ensemble({{"a", 1, result_of(two, {0, 1})}, {"c", 1, result_of(two, {0, 1})}}, 4),
                       doctest::Contains("a: 4 logits for 2 faces of 1 views and 4 classes"), Error);
}

TEST_CASE("the faces of an ensemble: the report half its members share, or a named refusal") {
  const std::string dir = testing::temp_dir("ensemble_faces");
  TrainConfig c;
  c.data = testing::write_synthetic_csv(dir, 40, 60);
  CalibrationRecord r;
  r.split = "PublicTest";
  r.seed = 3;
  r.n_fit = r.n_report = 30;
  std::string note;
  const Dataset whole = load_faces_for_ensemble_report(c, "PublicTest", 0, {"", ""}, {"a", "b"}, &note);
  CHECK(whole.size() == 60);
  CHECK(note.empty());
  // One member calibrated on half 0 of PublicTest: the ensemble is reported on half 1, as that member is.
  const Dataset half = load_faces_for_ensemble_report(c, "PublicTest", 0, {"", r.to_json()}, {"a", "b"}, &note);
  CHECK(half.size() == 30);
  CHECK(contains(note, "b: the model's temperature"));
  std::string single_note;
  const Dataset single = load_faces_for_report(c, "PublicTest", 0, r.to_json(), &single_note);
  CHECK(single.labels == half.labels);
  // Both on the same halves: the same faces. On other halves: no face unseen by both.
  CHECK(load_faces_for_ensemble_report(c, "PublicTest", 0, {r.to_json(), r.to_json()}, {"a", "b"}, &note).labels ==
        half.labels);
  CalibrationRecord other = r;
  other.seed = 4;
  CHECK_THROWS_WITH_AS(load_faces_for_ensemble_report(c, "PublicTest", 0, {r.to_json(), other.to_json()}, {"a", "b"}, &note),
                       doctest::Contains("b and a fitted their temperatures on different halves of PublicTest"), Error);
  // A record on another split leaves this one whole.
  CHECK(load_faces_for_ensemble_report(c, "Training", 0, {r.to_json(), other.to_json()}, {"a", "b"}, &note).size() == 40);
}

TEST_CASE("emotune evaluate with several --model: each member, then their ensemble") {
  const std::string bin = testing::emotune_binary();
  INFO("build the emotune target first: " << bin);
  REQUIRE(fs::exists(bin));
  const std::string dir = testing::temp_dir("ensemble_cli");
  const std::string data = testing::write_synthetic_csv(dir, 30, 50);
  const std::string a = testing::paper_model_file(dir, "a", {{"temperature", "1.5"}}, 11);
  const std::string b = testing::paper_model_file(dir, "b", {{"temperature", "0.8"}}, 12);
  const std::string pred = dir + "/pred.csv";
  REQUIRE(run_emotune("evaluate --json --tta none --split PublicTest --data " + data + " --model " + a + " --model " +
                          b + " --predictions " + pred,
                      dir + "/e.json") == 0);
  const json e = json::parse(testing::read_text(dir + "/e.json"))["none"];
  REQUIRE(e["members"].size() == 2);
  CHECK(e["members"][0]["model"] == a);
  CHECK(e["members"][1]["temperature"].get<double>() == 0.8);
  // Each member's accuracy is what evaluating it alone gives.
  for (int i = 0; i < 2; ++i) {
    REQUIRE(run_emotune("evaluate --json --tta none --split PublicTest --data " + data + " --model " +
                            e["members"][i]["model"].get<std::string>(),
                        dir + "/one.json") == 0);
    const json one = json::parse(testing::read_text(dir + "/one.json"))["none"];
    CHECK(one["accuracy"].get<double>() == e["members"][i]["accuracy"].get<double>());
  }
  // The predictions file holds the ensemble's top class, whose accuracy is the one reported.
  std::ifstream pf(pred);
  std::string line;
  std::getline(pf, line);
  int rows = 0, right = 0;
  while (std::getline(pf, line)) {
    int face, label, predicted;
    double top;
    REQUIRE(std::sscanf(line.c_str(), "%d,%d,%d,%lf", &face, &label, &predicted, &top) == 4);
    ++rows;
    right += label == predicted;
  }
  CHECK(rows == 50);
  CHECK(std::fabs((double)right / rows - e["accuracy"].get<double>()) < 1e-9);
  CHECK(e["calibration"]["members_t"]["accuracy"].get<double>() == e["accuracy"].get<double>());

  // No member was calibrated on a half of PublicTest: no faces to fit the ensemble's own T on.
  CHECK(run_emotune("evaluate --tta none --split PublicTest --data " + data + " --model " + a + " --model " + b +
                        " --ensemble-temperature",
                    dir + "/no-fit.txt") == 1);
  CHECK(contains(testing::read_text(dir + "/no-fit.txt.err"), "no member was calibrated on a half of PublicTest"));
  // One was: the ensemble's T is fitted on that half and its calibration reported on the other;
  // the accuracy is the ensemble's without it (a temperature changes no top class).
  CalibrationRecord rec;
  rec.split = "PublicTest";
  rec.seed = 2;
  rec.n_fit = rec.n_report = 25;
  Checkpoint cb = load_safetensors(b);
  cb.metadata["calibration"] = rec.to_json();
  const std::string bc = dir + "/b-cal.safetensors";
  save_safetensors(bc, cb.tensors, cb.metadata);
  REQUIRE(run_emotune("evaluate --json --tta none --split PublicTest --data " + data + " --model " + a + " --model " +
                          bc + " --ensemble-temperature",
                      dir + "/own.json") == 0);
  REQUIRE(run_emotune("evaluate --json --tta none --split PublicTest --data " + data + " --model " + a + " --model " +
                          bc,
                      dir + "/plain.json") == 0);
  const json own = json::parse(testing::read_text(dir + "/own.json"))["none"];
  const json plain = json::parse(testing::read_text(dir + "/plain.json"))["none"];
  CHECK(own["samples"] == 25);
  CHECK(own["ensemble_temperature"]["fit_faces"] == 25);
  CHECK(own["ensemble_temperature"]["temperature"].get<double>() > 0);
  CHECK(own["ensemble_temperature"]["after"]["accuracy"].get<double>() == plain["accuracy"].get<double>());
  CHECK(own["accuracy"].get<double>() == plain["accuracy"].get<double>());

  // A member with other classes is refused by name.
  std::map<std::string, std::string> meta = {{"arch", "paper"},
                                             {"classes", json(std::vector<std::string>{"a", "b", "c", "d", "e", "f", "g", "h"}).dump()},
                                             {"preprocess", Preprocess{}.to_json()}};
  const std::string eight = dir + "/eight.safetensors";
  save_safetensors(eight, make_paper_net(8, 5)->state_dict(), meta);
  CHECK(run_emotune("evaluate --tta none --data " + data + " --model " + a + " --model " + eight, dir + "/bad.txt") == 1);
  CHECK(contains(testing::read_text(dir + "/bad.txt.err"), eight + ": its classes differ"));
}

TEST_CASE("the ensemble's own temperature: p^(1/T) renormalised, fitted where the mean is under-confident") {
  // probabilities_at_temperature: T = 1 keeps them, T = 0.5 squares and renormalises.
  const std::vector<float> p = {0.5f, 0.3f, 0.2f};
  const std::vector<float> same = probabilities_at_temperature(p, 3, 1.0);
  for (int k = 0; k < 3; ++k) CHECK(std::fabs(same[k] - p[k]) < 1e-7);  // pow and a sum of 1 in double
  const std::vector<float> sharp = probabilities_at_temperature(p, 3, 0.5);
  CHECK(std::fabs(sharp[0] - 0.25 / 0.38) < 1e-7);
  CHECK(std::fabs(sharp[2] - 0.04 / 0.38) < 1e-7);

  // An under-confident set: 600 faces whose top probability is 0.5 but which are right 90% of the
  // time. The fitted T is below 1, keeps every top class, and brings the ECE down.
  std::vector<float> probs;
  std::vector<int> labels;
  for (int i = 0; i < 600; ++i) {
    const int top = i % 3;
    for (int k = 0; k < 3; ++k) probs.push_back(k == top ? 0.5f : 0.25f);
    labels.push_back(i % 10 == 0 ? (top + 1) % 3 : top);
  }
  const TemperatureChoice t = fit_ensemble_temperature(probs, labels, 3);
  CHECK(t.temperature < 1.0);
  CHECK_FALSE(t.declined());
  const std::vector<float> after = probabilities_at_temperature(probs, 3, t.temperature);
  CHECK(expected_calibration_error(after, labels, 3) < 0.5 * expected_calibration_error(probs, labels, 3));
  CHECK(compute_metrics(after, labels, 3).accuracy == compute_metrics(probs, labels, 3).accuracy);
}
