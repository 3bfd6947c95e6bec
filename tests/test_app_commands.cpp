// `emotune predict` and `emotune recommend` run in-process (CLI::App + the command, argv parsed,
// stdout/stderr captured) on committed fixtures and a randomly initialised paper network saved as
// a real checkpoint: output schemas, exit codes and every bad input.
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <set>
#include <sstream>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "apps/commands.h"
#include "apps/pipeline/paths.h"
#include "apps/report/predict.h"
#include "apps/report/recommend.h"
#include "base/error.h"
#include "engine/checkpoint.h"
#include "base/image.h"
#include "layers/gradcam.h"
#include "layers/model.h"
#include "layers/nets/nets.h"
#include "tests/testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using json = nlohmann::ordered_json;  // keeps key order, so class order is checked
using emotune::testing::contains;

namespace {

const std::vector<std::string> kFer = {"angry", "disgust", "fear", "happy",
                                       "sad",   "surprise", "neutral"};

std::string fixture(const std::string& name) {
  return testing::source_dir() + "/tests/data/app/" + name;
}

// A real checkpoint of the paper network with seeded random weights, written once.
std::string paper_checkpoint() {
  static std::string path = [] {
    std::string p = testing::temp_dir("app_model") + "/paper-random.safetensors";
    auto net = make_paper_net(7, 1234);
    save_safetensors(p, net->state_dict(),
                     {{"arch", "paper"}, {"classes", json(kFer).dump()},
                      {"preprocess", Preprocess{}.to_json()}});
    return p;
  }();
  return path;
}

struct Run {
  int code = 0;
  std::string out, err;
};

// Runs `emotune <args>` in this process, as main.cpp does.
Run run(std::vector<std::string> args) {
  args.insert(args.begin(), "emotune");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  CLI::App app{"emotune (test)"};
  app.require_subcommand(1);
  add_predict_command(app);
  add_recommend_command(app);
  cli_exit_code() = 0;
  std::ostringstream out, err;
  auto* old_out = std::cout.rdbuf(out.rdbuf());
  auto* old_err = std::cerr.rdbuf(err.rdbuf());
  Run r;
  try {
    app.parse((int)argv.size(), argv.data());
    r.code = cli_exit_code();
  } catch (const CLI::ParseError& e) {
    r.code = app.exit(e, out, err);
  } catch (const std::exception& e) {
    err << "error: " << e.what() << "\n";
    r.code = 1;
  }
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  r.out = out.str();
  r.err = err.str();
  return r;
}

void check_probabilities(const json& probs) {
  REQUIRE(probs.is_object());
  REQUIRE(probs.size() == kFer.size());
  double sum = 0;
  size_t i = 0;
  for (auto it = probs.begin(); it != probs.end(); ++it, ++i) {
    CHECK(it.key() == kFer[i]);  // model class order
    double p = it.value().get<double>();
    CHECK(p >= 0.0);
    CHECK(p <= 1.0);
    sum += p;
  }
  CHECK(sum == doctest::Approx(1.0).epsilon(1e-5));  // 7 values rounded to 1e-6 each
}

void check_box(const json& b) {
  for (const char* k : {"x", "y", "w", "h"}) {
    REQUIRE(b.contains(k));
    CHECK(b[k].is_number_integer());
  }
  CHECK(b["w"].get<int>() > 0);
}

}  // namespace

TEST_CASE("predict --json: schema, boxes, probabilities for a two-face photo") {
  // Without --align (the default is none): plain crops, and the alignment fields say so.
  Run plain = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json"});
  INFO(plain.err);
  REQUIRE(plain.code == 0);
  const json plain_doc = json::parse(plain.out);  // named: a range-for over a temporary's member dangles
  for (const json& f : plain_doc["images"][0]["faces"]) {
    CHECK(f["landmarks"].is_null());
    CHECK(f["angle"].is_null());
    CHECK(f["rotation"] == 0);
  }
  Run r = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json",
               "--align", "landmarks"});
  INFO(r.err);
  REQUIRE(r.code == 0);
  json doc = json::parse(r.out);
  CHECK(doc["model"]["arch"] == "paper");
  CHECK(doc["model"]["path"] == paper_checkpoint());
  CHECK(doc["model"]["classes"] == json(kFer));
  REQUIRE(doc["images"].size() == 1);
  const json& img = doc["images"][0];
  CHECK(img["file"] == fixture("two_people.jpg"));
  CHECK(img["width"] == 480);
  CHECK(img["height"] == 282);
  CHECK(img["status"] == "ok");
  CHECK_FALSE(img.contains("error"));
  REQUIRE(img["faces"].size() == 2);
  for (const json& f : img["faces"]) {
    check_box(f["box"]);
    check_box(f["crop"]);
    check_probabilities(f["probabilities"]);
    // "top" is the arg-max of "probabilities".
    std::string best;
    double bp = -1;
    for (auto it = f["probabilities"].begin(); it != f["probabilities"].end(); ++it)
      if (it.value().get<double>() > bp) bp = it.value().get<double>(), best = it.key();
    CHECK(f["top"]["class"] == best);
    CHECK(f["top"]["probability"].get<double>() == bp);
    // With --align landmarks: 68 landmarks inside the crop, the eyes, the tilt, the rotation.
    REQUIRE(f["landmarks"].size() == 68);
    for (const json& p : f["landmarks"]) {  // the jaw may reach past the box, not the image
      CHECK(p[0].get<double>() >= 0);
      CHECK(p[0].get<double>() <= 480);
    }
    // The eyes lie inside the face box, left before right.
    for (const char* eye : {"left", "right"}) {
      double x = f["eyes"][eye][0].get<double>(), y = f["eyes"][eye][1].get<double>();
      CHECK(x > f["box"]["x"].get<int>());
      CHECK(x < f["box"]["x"].get<int>() + f["box"]["w"].get<int>());
      CHECK(y > f["box"]["y"].get<int>());
      CHECK(y < f["box"]["y"].get<int>() + f["box"]["h"].get<int>());
    }
    CHECK(f["eyes"]["left"][0].get<double>() < f["eyes"]["right"][0].get<double>());
    double angle = f["angle"].get<double>(), rotation = f["rotation"].get<double>();
    CHECK(std::abs(angle) < 45);
    CHECK((rotation == 0 || rotation == angle));
  }
  CHECK(img["faces"][0]["box"]["x"].get<int>() < img["faces"][1]["box"]["x"].get<int>());
}

TEST_CASE("predict --detector / --align: each detector answers; --align none gives null fields") {
  for (const char* det : {"hog", "haar", "lbp"}) {
    Run r = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json",
                 "--detector", det, "--align", "none"});
    INFO(std::string(det) << ": " << r.err);
    REQUIRE(r.code == 0);
    json doc = json::parse(r.out);
    // HOG and Haar find both faces of this small (480x282) photo; LBP finds one (docs/faces.md:
    // it misses 7 of the 33 faces of the shared photos too).
    REQUIRE(doc["images"][0]["faces"].size() == (std::string(det) == "lbp" ? 1u : 2u));
    const json& f = doc["images"][0]["faces"][0];
    CHECK(f["landmarks"].is_null());
    CHECK(f["eyes"].is_null());
    CHECK(f["angle"].is_null());
    CHECK(f["rotation"] == 0);
  }
  Run bad = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--detector",
                 "cnn"});
  CHECK(bad.code != 0);
  CHECK(contains(bad.err, "--detector"));
  Run bad_align = run({"recommend", "--image", fixture("two_people.jpg"), "--model",
                       paper_checkpoint(), "--align", "eyes"});
  CHECK(bad_align.code != 0);
  CHECK(contains(bad_align.err, "--align"));
  // --no-detect: the whole image is the face; nothing to align.
  Run nd = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json",
                "--no-detect"});
  REQUIRE(nd.code == 0);
  CHECK(json::parse(nd.out)["images"][0]["faces"][0]["angle"].is_null());
}

TEST_CASE("predict: the probabilities are the model's on the prepared face") {
  // --no-detect on a 48x48 crop: the output equals predict_probabilities on the same input.
  Run r = run({"predict", fixture("face48.png"), "--model", paper_checkpoint(), "--json",
               "--no-detect"});
  REQUIRE(r.code == 0);
  json face = json::parse(r.out)["images"][0]["faces"][0];
  CHECK(face["box"] == json({{"x", 0}, {"y", 0}, {"w", 48}, {"h", 48}}));
  LoadedModel m = load_model(paper_checkpoint());
  GrayImage img = load_gray_image(fixture("face48.png"));
  auto x = prepare_face_inputs(img, find_faces(img, nullptr, 0.1), m.info.preprocess);
  auto p = predict_probabilities(m, x.data(), 1);
  for (size_t c = 0; c < kFer.size(); ++c)
    // JSON rounds to 6 decimals.
    CHECK(face["probabilities"][kFer[c]].get<double>() == doctest::Approx(p[0][c]).epsilon(1e-5));
}

TEST_CASE("predict --csv and the table: one row per face") {
  Run csv = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--csv"});
  REQUIRE(csv.code == 0);
  std::istringstream lines(csv.out);
  std::string header, row;
  std::getline(lines, header);
  CHECK(header == "file,face,x,y,w,h,top,angry,disgust,fear,happy,sad,surprise,neutral,unsure");
  int rows = 0;
  while (std::getline(lines, row)) {
    ++rows;
    CHECK(std::count(row.begin(), row.end(), ',') == 14);
    CHECK(row.rfind(fixture("two_people.jpg") + "," + std::to_string(rows) + ",", 0) == 0);
  }
  CHECK(rows == 2);

  Run table = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint()});
  REQUIRE(table.code == 0);
  CHECK(contains(table.out, "two_people.jpg (480x282): 2 faces"));
  CHECK(contains(table.out, "neutral"));
  // --json and --csv together is a usage error.
  CHECK(run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json", "--csv"})
            .code != 0);
}

TEST_CASE("predict: a folder with a face-less image reports it and exits 2") {
  fs::path dir = testing::temp_dir("app_predict_folder");
  fs::copy_file(fixture("flat_gray.png"), dir / "a_flat.png");
  fs::copy_file(fixture("two_people.jpg"), dir / "b_people.jpg");
  Run r = run({"predict", dir.string(), "--model", paper_checkpoint(), "--json"});
  CHECK(r.code == 2);
  CHECK(contains(r.err, "no face found in " + (dir / "a_flat.png").string()));
  json doc = json::parse(r.out);
  REQUIRE(doc["images"].size() == 2);
  CHECK(doc["images"][0]["status"] == "no_face");
  CHECK(doc["images"][0]["faces"].empty());
  CHECK(doc["images"][1]["status"] == "ok");
  CHECK(doc["images"][1]["faces"].size() == 2);
  // The table says it too.
  Run t = run({"predict", (dir / "a_flat.png").string(), "--model", paper_checkpoint()});
  CHECK(t.code == 2);
  CHECK(contains(t.out, "a_flat.png (64x64): no face found"));
}

TEST_CASE("predict: bad inputs are named and exit non-zero") {
  Run missing = run({"predict", fixture("missing.jpg"), "--model", paper_checkpoint()});
  CHECK(missing.code == 1);
  CHECK(contains(missing.err, "missing.jpg: no such file or folder"));

  Run not_image = run({"predict", fixture("not_an_image.jpg"), fixture("two_people.jpg"), "--model",
                       paper_checkpoint(), "--json"});
  CHECK(not_image.code == 1);
  CHECK(contains(not_image.err, "not_an_image.jpg: not an image"));
  json doc = json::parse(not_image.out);  // the good image is still reported
  CHECK(doc["images"][0]["status"] == "error");
  CHECK(contains(doc["images"][0]["error"].get<std::string>(), "not an image"));
  CHECK(doc["images"][1]["status"] == "ok");

  Run truncated = run({"predict", fixture("truncated.jpg"), "--model", paper_checkpoint()});
  CHECK(truncated.code == 1);
  CHECK(contains(truncated.err, "truncated"));

  Run no_model = run({"predict", fixture("two_people.jpg"), "--model", fixture("none.safetensors")});
  CHECK(no_model.code == 1);
  CHECK(contains(no_model.err, "none.safetensors: model file not found"));

  Run not_ckpt = run({"predict", fixture("two_people.jpg"), "--model", fixture("tracks_ok.csv")});
  CHECK(not_ckpt.code == 1);
  CHECK(contains(not_ckpt.err, "tracks_ok.csv"));

  Run margin = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--margin",
                    "-1"});
  CHECK(margin.code == 1);
  CHECK(contains(margin.err, "--margin"));
}

TEST_CASE("predict/recommend: a checkpoint for another network is refused") {
  // vgg weights under a paper label: the tensors do not fit the paper network.
  std::string path = testing::temp_dir("app_model_other") + "/vgg-as-paper.safetensors";
  save_safetensors(path, make_vgg_net(7, 5)->state_dict(),
                   {{"arch", "paper"}, {"classes", json(kFer).dump()},
                    {"preprocess", Preprocess{}.to_json()}});
  Run r = run({"predict", fixture("two_people.jpg"), "--model", path});
  CHECK(r.code == 1);
  CHECK(contains(r.err, "another network"));
  Run rec = run({"recommend", "--image", fixture("two_people.jpg"), "--model", path});
  CHECK(rec.code == 1);
  CHECK(contains(rec.err, "another network"));

  // A model whose classes have no valence/energy target cannot recommend.
  std::string odd = testing::temp_dir("app_model_odd") + "/odd-classes.safetensors";
  std::vector<std::string> classes = {"cat", "dog", "fear", "happy", "sad", "surprise", "neutral"};
  save_safetensors(odd, make_paper_net(7, 3)->state_dict(),
                   {{"arch", "paper"}, {"classes", json(classes).dump()},
                    {"preprocess", Preprocess{}.to_json()}});
  Run o = run({"recommend", "--image", fixture("two_people.jpg"), "--model", odd});
  CHECK(o.code == 1);
  CHECK(contains(o.err, "'cat' has no valence/energy target"));
}

TEST_CASE("recommend --json: schema, one track per artist, target from the largest face") {
  for (const char* policy : {"match", "uplift"}) {
    Run r = run({"recommend", "--image", fixture("two_people.jpg"), "--model", paper_checkpoint(),
                 "--json", "--top", "7", "--policy", policy});
    INFO(r.err);
    REQUIRE(r.code == 0);
    json doc = json::parse(r.out);
    CHECK(doc["image"] == fixture("two_people.jpg"));
    CHECK(doc["faces_found"] == 2);
    check_box(doc["face"]["box"]);
    check_box(doc["face"]["crop"]);
    check_probabilities(doc["mood"]["probabilities"]);
    CHECK(doc["mood"]["top"]["class"].is_string());

    // The face is the largest of predict's faces.
    json pred = json::parse(
        run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json"}).out);
    const json& faces = pred["images"][0]["faces"];
    size_t big = 0;
    for (size_t i = 1; i < faces.size(); ++i)
      if (faces[i]["box"]["w"].get<int>() * faces[i]["box"]["h"].get<int>() >
          faces[big]["box"]["w"].get<int>() * faces[big]["box"]["h"].get<int>())
        big = i;
    CHECK(doc["face"]["box"] == faces[big]["box"]);

    // The target is compute_mood_target of the printed probabilities.
    std::vector<float> p;
    for (const auto& c : kFer) p.push_back(doc["mood"]["probabilities"][c].get<float>());
    MoodTarget t = compute_mood_target(kFer, p, parse_policy(policy));
    const json& tj = doc["target"];
    CHECK(tj["policy"] == policy);
    CHECK(tj["valence"].get<double>() == doctest::Approx(t.target.valence).epsilon(1e-3));
    CHECK(tj["energy"].get<double>() == doctest::Approx(t.target.energy).epsilon(1e-3));
    CHECK(tj["mood_valence"].get<double>() == doctest::Approx(t.mood.valence).epsilon(1e-3));
    CHECK(tj.contains("valence_shift"));
    CHECK(tj.contains("negative_mass"));
    CHECK(contains(doc["explanation"].get<std::string>(), "one per artist"));
    CHECK(contains(doc["tracks_file"].get<std::string>(), "data/music/tracks.csv"));

    REQUIRE(doc["tracks"].size() == 7);
    std::set<std::string> artists;
    double last = -1;
    for (size_t i = 0; i < doc["tracks"].size(); ++i) {
      const json& tr = doc["tracks"][i];
      CHECK(tr["rank"] == i + 1);
      for (const char* k : {"id", "artist", "title"}) CHECK(tr[k].is_string());
      double d = std::hypot(tr["valence"].get<double>() - t.target.valence,
                            tr["energy"].get<double>() - t.target.energy);
      CHECK(tr["distance"].get<double>() == doctest::Approx(d).epsilon(1e-3));
      CHECK(tr["distance"].get<double>() >= last);
      last = tr["distance"].get<double>();
      CHECK(artists.insert(tr["artist"].get<std::string>()).second);
    }
  }
}

TEST_CASE("recommend: the text output names mood, target, reason and tracks") {
  Run r = run({"recommend", "--image", fixture("two_people.jpg"), "--model", paper_checkpoint(),
               "--tracks", fixture("tracks_ok.csv"), "--top", "3", "--policy", "uplift"});
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "Mood:"));
  CHECK(contains(r.out, "(the largest of 2 faces)"));
  CHECK(contains(r.out, "Target: valence"));
  CHECK(contains(r.out, "policy uplift"));
  CHECK(contains(r.out, "Why:"));
  CHECK(contains(r.out, "one per artist"));
  CHECK(contains(r.out, "Tracks: 7 in " + fixture("tracks_ok.csv")));
}

TEST_CASE("recommend: no face, bad tables and bad images each fail clearly") {
  Run flat = run({"recommend", "--image", fixture("flat_gray.png"), "--model", paper_checkpoint()});
  CHECK(flat.code == 2);
  CHECK(flat.out.empty());  // no tracks without a face: never a guess
  CHECK(contains(flat.err, "no face found in " + fixture("flat_gray.png")));

  // The table is checked before the model is even looked for.
  Run table = run({"recommend", "--image", fixture("two_people.jpg"), "--model", "nowhere",
                   "--tracks", fixture("tracks_missing_energy.csv")});
  CHECK(table.code == 1);
  CHECK(contains(table.err, "tracks_missing_energy.csv:1: missing required column 'energy'"));
  Run number = run({"recommend", "--image", fixture("two_people.jpg"), "--model", paper_checkpoint(),
                    "--tracks", fixture("tracks_bad_number.csv")});
  CHECK(number.code == 1);
  CHECK(contains(number.err, "tracks_bad_number.csv:3:3"));
  Run no_table = run({"recommend", "--image", fixture("two_people.jpg"), "--tracks", "none.csv"});
  CHECK(no_table.code == 1);
  CHECK(contains(no_table.err, "none.csv: mood table not found"));

  Run missing = run({"recommend", "--image", fixture("missing.jpg"), "--model", paper_checkpoint()});
  CHECK(missing.code == 1);
  CHECK(contains(missing.err, "missing.jpg: no such file or folder"));
  Run truncated =
      run({"recommend", "--image", fixture("truncated.jpg"), "--model", paper_checkpoint()});
  CHECK(truncated.code == 1);
  CHECK(contains(truncated.err, "truncated"));
  Run not_image =
      run({"recommend", "--image", fixture("not_an_image.jpg"), "--model", paper_checkpoint()});
  CHECK(not_image.code == 1);
  CHECK(contains(not_image.err, "not an image"));
  Run policy = run({"recommend", "--image", fixture("two_people.jpg"), "--policy", "cheer"});
  CHECK(policy.code != 0);
  Run top = run({"recommend", "--image", fixture("two_people.jpg"), "--top", "0"});
  CHECK(top.code != 0);
}

TEST_CASE("the built emotune binary: recommend on the shipped example, exit codes") {
  std::string bin = std::string(EMOTUNE_BINARY_DIR) + "/bin/emotune";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED (emotune binary not built): " << bin);
    return;
  }
  std::string out = testing::temp_dir("app_binary") + "/out.json";
  std::string cmd = bin + " recommend --image " + testing::source_dir() +
                    "/examples/face.jpg --model " + paper_checkpoint() + " --json > " +
                    out + " 2>&1";
  int rc = std::system(cmd.c_str());
  REQUIRE(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 0);
  std::ifstream in(out);
  json doc = json::parse(in);
  CHECK(doc["faces_found"] == 1);
  CHECK(doc["tracks"].size() == 5);  // the default --top
  std::string flat = bin + " predict " + fixture("flat_gray.png") + " --model " +
                     paper_checkpoint() + " > /dev/null 2>&1";
  rc = std::system(flat.c_str());
  REQUIRE(WIFEXITED(rc));
  CHECK(WEXITSTATUS(rc) == 2);
}

TEST_CASE("the built emotune binary: the runtime settings come from the environment, checked at start") {
  std::string bin = std::string(EMOTUNE_BINARY_DIR) + "/bin/emotune";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED (emotune binary not built): " << bin);
    return;
  }
  const std::string log = testing::temp_dir("app_runtime_env") + "/out.txt";
  auto run_bin = [&](const std::string& env, const std::string& args) {
    const std::string cmd = "env " + env + " " + bin + " " + args + " > " + log + " 2>&1";
    const int rc = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(rc));
    std::ifstream in(log);
    std::stringstream text;
    text << in.rdbuf();
    return std::make_pair(WEXITSTATUS(rc), text.str());
  };
  const std::string recommend =
      "recommend --image " + testing::source_dir() + "/examples/face.jpg --model " + paper_checkpoint() + " --json";
  // A wrong value stops the program before any work, with the variable and its allowed values named.
  auto [code, out] = run_bin("EMOTUNE_TRAIN_CONV=bogus", recommend);
  CHECK(code == 1);
  CHECK(contains(out, "emotune: error: EMOTUNE_TRAIN_CONV: unknown value 'bogus' (auto, im2col, winograd, winograd4)"));
  std::tie(code, out) = run_bin("EMOTUNE_GRAPH=fast", recommend);
  CHECK(code == 1);
  CHECK(contains(out, "EMOTUNE_GRAPH='fast': expected 'inference' (the default) or 'training'"));
  // Valid values are taken: the same command runs on the training graph and im2col.
  std::tie(code, out) = run_bin("EMOTUNE_GRAPH=training EMOTUNE_TRAIN_CONV=im2col EMOTUNE_CONV_TUNE=0", recommend);
  CHECK(code == 0);
  CHECK(contains(out, "\"faces_found\""));
}

TEST_CASE("predict, recommend and evaluate find the shipped defaults from any working directory") {
  // One rule (apps/pipeline/paths.h): a default path is looked up from the working directory,
  // then from the repository the binary was built in. evaluate used to skip the second step.
  std::string bin = std::string(EMOTUNE_BINARY_DIR) + "/bin/emotune";
  if (!fs::exists(bin)) {
    MESSAGE("SKIPPED (emotune binary not built): " << bin);
    return;
  }
  std::string elsewhere = testing::temp_dir("app_defaults");  // holds no models/ or data/
  std::string src = testing::source_dir();
  auto run_in = [&](const std::string& args, const std::string& out) {
    std::string cmd = "cd " + elsewhere + " && " + bin + " " + args + " > " + out + " 2>&1";
    int rc = std::system(cmd.c_str());
    REQUIRE(WIFEXITED(rc));
    return WEXITSTATUS(rc);
  };
  std::string out = elsewhere + "/out.json";
  CHECK(run_in("predict --json " + src + "/examples/face.jpg", out) == 0);
  json p = json::parse(std::ifstream(out));
  CHECK(fs::equivalent(p["model"]["path"].get<std::string>(), src + "/" + kDefaultModel));

  CHECK(run_in("recommend --json --image " + src + "/examples/face.jpg", out) == 0);
  json r = json::parse(std::ifstream(out));
  CHECK(fs::equivalent(r["tracks_file"].get<std::string>(), src + "/" + kDefaultTracks));

  CHECK(run_in("evaluate --json --tta none --split Training --data " + src +
                   "/tests/data/fer2013/tiny.csv",
               out) == 0);
  std::ifstream ev(out);
  std::string text((std::istreambuf_iterator<char>(ev)), std::istreambuf_iterator<char>());
  CHECK(contains(text, "\"accuracy\""));

  // --predictions: a header and one row per face, whose predictions give the accuracy printed.
  const std::string pred = elsewhere + "/pred.csv";
  CHECK(run_in("evaluate --json --tta none --split Training --predictions " + pred + " --data " + src +
                   "/tests/data/fer2013/tiny.csv",
               out) == 0);
  std::ifstream eo(out);  // stderr's progress lines share the file: the JSON is from the first '{' to the last '}'
  std::string etext((std::istreambuf_iterator<char>(eo)), std::istreambuf_iterator<char>());
  REQUIRE(etext.find('{') != std::string::npos);
  json em = json::parse(etext.substr(etext.find('{'), etext.rfind('}') - etext.find('{') + 1));
  std::ifstream pf(pred);
  std::string line;
  std::getline(pf, line);
  CHECK(line == "face,label,predicted,top_probability");
  int rows = 0, right = 0;
  while (std::getline(pf, line)) {
    int face, label, predicted;
    double top;
    REQUIRE(std::sscanf(line.c_str(), "%d,%d,%d,%lf", &face, &label, &predicted, &top) == 4);
    CHECK(face == rows);
    CHECK((top > 0 && top <= 1));
    ++rows;
    right += label == predicted;
  }
  CHECK(rows > 0);
  CHECK(std::fabs((double)right / rows - em["none"]["accuracy"].get<double>()) < 1e-9);
  CHECK(run_in("evaluate --tta none --precision fp16 --data " + src + "/tests/data/fer2013/tiny.csv", out) != 0);
  CHECK(run_in("evaluate --tta ten-crop --tta-crop 40 --split Training --data " + src + "/tests/data/fer2013/tiny.csv", out) == 0);
  CHECK(run_in("evaluate --tta ten-crop --tta-crop 60 --split Training --data " + src + "/tests/data/fer2013/tiny.csv", out) != 0);
  CHECK(contains(testing::read_text(out), "crop size 60 must be 1..48"));

  // A path the user gave is used as given, so the error names exactly what they typed.
  CHECK(run_in("predict --model models/paper.safetensors " + src + "/examples/face.jpg", out) == 1);
  std::ifstream err(out);
  std::string message((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
  CHECK(contains(message, "models/paper.safetensors: model file not found"));
}

TEST_CASE("recommend text: columns stay aligned with non-ASCII and over-long names") {
  MoodTable table = parse_mood_table(
      "artist,title,valence,energy\n"
      "Róisín Murphy,Dear Miami,0.80,0.65\n"
      "Plain,An extremely long title that will certainly not fit in the column,0.79,0.65\n"
      "Sigur Rós,Hoppípolla,0.81,0.66\n",
      "utf8.csv");
  FaceResult face;
  face.box = {10, 10, 50, 50};
  face.crop = {5, 5, 60, 60};
  face.probabilities = {0, 0, 0, 1, 0, 0, 0};
  Recommendation r = make_recommendation("x.jpg", {face}, kFer, table, Policy::match, 3);
  std::string text = recommendation_text(r, table);
  std::istringstream lines(text);
  std::string line;
  std::vector<size_t> columns;  // code-point position of the valence figure on each track row
  while (std::getline(lines, line)) {
    if (line.rfind("  1 ", 0) != 0 && line.rfind("  2 ", 0) != 0 && line.rfind("  3 ", 0) != 0)
      continue;
    size_t at = line.find(" 0.8") != std::string::npos ? line.find(" 0.8") : line.find(" 0.79");
    REQUIRE(at != std::string::npos);
    size_t chars = 0;
    for (size_t i = 0; i < at; ++i) chars += ((unsigned char)line[i] & 0xC0) != 0x80;
    columns.push_back(chars);
  }
  REQUIRE(columns.size() == 3);
  CHECK(columns[0] == columns[1]);
  CHECK(columns[1] == columns[2]);
  CHECK(contains(text, "An extremely long title that will... "));  // 33 characters + "..."
}

TEST_CASE("predict --explain: a picture per face, the JSON names it, and its map is the library's") {
  const std::string dir = testing::temp_dir("explain_cli");
  const std::string model = testing::source_dir() + "/models/vgg.safetensors";
  Run r = run({"predict", fixture("face48.png"), "--no-detect", "--model", model, "--json", "--explain",
               dir + "/pics", "--explain-json"});
  REQUIRE_MESSAGE(r.code == 0, r.err);
  const json doc = json::parse(r.out);
  const json& face = doc["images"][0]["faces"][0];
  REQUIRE(face.contains("explanation"));
  const json& e = face["explanation"];
  CHECK(e["class"] == face["top"]["class"]);
  CHECK(e["layer"] == "relu4_1");
  const std::string file = e["file"].get<std::string>();
  CHECK(file == dir + "/pics/face48-face1.png");
  REQUIRE(fs::exists(file));
  CHECK(load_gray_image(file).width > 240);  // the face at 240 px plus the colour bar
  // The same map from the library on the same input (--no-detect on a 48x48 face: pixels / 255).
  GrayImage img = load_gray_image(fixture("face48.png"));
  std::vector<float> x(img.pixels.size());
  for (size_t i = 0; i < x.size(); ++i) x[i] = img.pixels[i] / 255.0f;
  GradCam cam = grad_cam(load_model(model), x.data());
  REQUIRE(e["map"]["height"] == cam.height);
  REQUIRE(e["map"]["width"] == cam.width);
  const json& values = e["map"]["values"];
  REQUIRE(values.size() == cam.map.size());
  double vmax = *std::max_element(cam.map.begin(), cam.map.end());
  for (size_t i = 0; i < cam.map.size(); ++i)  // JSON keeps 6 significant digits
    CHECK(values[i].get<double>() == doctest::Approx(cam.map[i]).epsilon(1e-5).scale(vmax));

  // Another class on request; a class the model does not have, or the option alone, is an error.
  Run sad = run({"predict", fixture("face48.png"), "--no-detect", "--model", model, "--json", "--explain-json",
                 "--explain-class", "sad"});
  REQUIRE_MESSAGE(sad.code == 0, sad.err);
  CHECK(json::parse(sad.out)["images"][0]["faces"][0]["explanation"]["class"] == "sad");
  CHECK(json::parse(sad.out)["images"][0]["faces"][0]["explanation"]["file"].is_null());
  Run bad = run({"predict", fixture("face48.png"), "--no-detect", "--model", model, "--explain-json",
                 "--explain-class", "bored"});
  CHECK(bad.code == 1);
  CHECK(contains(bad.err, "--explain-class bored: the model has no such class"));
  Run alone = run({"predict", fixture("face48.png"), "--no-detect", "--model", model, "--explain-class", "sad"});
  CHECK(alone.code == 1);
  CHECK(contains(alone.err, "--explain-class needs --explain DIR or --explain-json"));
  // Without --explain nothing is explained.
  Run plain = run({"predict", fixture("face48.png"), "--no-detect", "--model", model, "--json"});
  CHECK_FALSE(json::parse(plain.out)["images"][0]["faces"][0].contains("explanation"));
}

TEST_CASE("unsure: below the threshold a face names its two likeliest moods, everywhere it is shown") {
  CHECK(mood_text({0.1f, 0.0f, 0.0f, 0.5f, 0.38f, 0.0f, 0.02f}, kFer, false) == "happy 50%");
  CHECK(mood_text({0.1f, 0.0f, 0.0f, 0.18f, 0.38f, 0.0f, 0.34f}, kFer, true) == "unsure: sad 38% / neutral 34%");
  CHECK(is_unsure({0.2f, 0.49f, 0.31f}, 0.5));
  CHECK_FALSE(is_unsure({0.2f, 0.5f, 0.3f}, 0.5));  // at the threshold a mood is named
  CHECK_FALSE(is_unsure({0.2f, 0.49f, 0.31f}, 0.0));
  CHECK_THROWS_WITH_AS(check_unsure_below(1.5), doctest::Contains("--unsure-below must be between 0 and 1"), Error);

  // Reports of a hand-made unsure face: the JSON flag, the table, the CSV column, recommend.
  FaceResult face;
  face.box = {10, 10, 50, 50};
  face.crop = {5, 5, 60, 60};
  face.probabilities = {0.1f, 0.0f, 0.0f, 0.18f, 0.38f, 0.0f, 0.34f};
  face.unsure = true;
  ImageResult img{"x.jpg", 100, 100, {face}, ""};
  ModelInfo info;
  info.arch = "paper";
  info.classes = kFer;
  CHECK(predict_json({img}, "m", info)["images"][0]["faces"][0]["unsure"] == true);
  CHECK(contains(predict_table({img}, info), "unsure: sad 38% / neutral 34%"));
  CHECK(predict_csv({img}, info).find(",1\n") != std::string::npos);
  MoodTable table = parse_mood_table("artist,title,valence,energy\nA,a,0.3,0.3\nB,b,0.8,0.6\n", "t.csv");
  Recommendation r = make_recommendation("x.jpg", {face}, kFer, table, Policy::match, 1);
  CHECK(contains(r.explanation, "unsure, so no single mood: sad 38%, neutral 34%"));
  CHECK(contains(r.explanation, "-> probability-weighted target valence"));
  CHECK(contains(recommendation_text(r, table), "Mood:   unsure: sad 38% / neutral 34%"));
  CHECK(recommendation_json(r, table)["mood"]["unsure"] == true);

  // The flag end to end: 1 makes every face unsure (a top probability is always below 1), 0 none.
  Run all = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json", "--unsure-below", "1"});
  REQUIRE(all.code == 0);
  const json all_doc = json::parse(all.out);  // named: a range-for over a temporary's member dangles
  for (const json& f : all_doc["images"][0]["faces"]) CHECK(f["unsure"] == true);
  Run none = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--json", "--unsure-below", "0"});
  REQUIRE(none.code == 0);
  const json none_doc = json::parse(none.out);
  for (const json& f : none_doc["images"][0]["faces"]) CHECK(f["unsure"] == false);
  Run bad = run({"predict", fixture("two_people.jpg"), "--model", paper_checkpoint(), "--unsure-below", "2"});
  CHECK(bad.code != 0);
}
