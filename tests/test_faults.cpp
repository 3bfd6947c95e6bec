// Faults a long training run meets: SIGKILL while a checkpoint is being written, a full disk, an
// unwritable run folder, a loss that turns NaN or explodes after good epochs. Each must end with a
// clear message and a non-zero exit, and must never damage the last good checkpoint.
//
// A full disk is simulated with RLIMIT_FSIZE (write() then fails with EFBIG, "File too large",
// through the same error path as ENOSPC): filling a real filesystem needs a mount this test cannot
// make. The unwritable folder is chmod 0555; as root (CI) the writer drops to uid/gid 65534 first,
// since root ignores permissions.
#include <doctest/doctest.h>
#include <grp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "apps/train/config.h"
#include "apps/train/trainer.h"
#include "engine/checkpoint.h"
#include "kernels/philox.h"
#include "tests/testing.h"
#include "tests/train_testing.h"

namespace fs = std::filesystem;
using namespace emotune;

namespace {

// A checkpoint whose every value is `generation`, recorded in its metadata too, so a reader can
// tell a complete file (values == metadata) from a mix of two writes.
void save_generation(const std::string& path, int64_t generation, int64_t floats) {
  Tensor t = Tensor::from_vector({floats}, std::vector<float>((size_t)floats, (float)generation));
  save_safetensors(path, {{"w", t}}, {{"generation", std::to_string(generation)}}, DType::f32);
}

int64_t check_generation(const std::string& path) {
  Checkpoint ck = load_safetensors(path);
  const int64_t g = std::stoll(ck.meta("generation"));
  std::vector<float> v = ck.tensors.at(0).tensor.to_vector();
  for (float x : v)
    if (x != (float)g) throw Error(path + ": values of two generations mixed");
  return g;
}

int count_temp_files(const std::string& dir) {
  int n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().filename().string().find(".tmp.") != std::string::npos;
  return n;
}

void limit_file_size_to_256k() {
  signal(SIGXFSZ, SIG_IGN);  // write() fails with EFBIG instead of the process being killed
  rlimit r{256 << 10, 256 << 10};
  setrlimit(RLIMIT_FSIZE, &r);
}

// Root ignores file permissions; a writer that must meet EACCES runs as nobody.
void drop_root() {
  if (geteuid() != 0) return;
  if (setgroups(0, nullptr) != 0 || setgid(65534) != 0 || setuid(65534) != 0) _exit(126);
}

// Runs body() in a forked child after setup() and returns the message of the emotune::Error it
// threw ("" when none). The child never returns into the test runner.
template <class Setup, class Body>
std::string error_in_child(Setup setup, Body body) {
  int fds[2];
  REQUIRE(pipe(fds) == 0);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    close(fds[0]);
    setup();
    std::string msg = testing::error_of(body);
    (void)!write(fds[1], msg.data(), msg.size());
    _exit(0);
  }
  close(fds[1]);
  std::string msg;
  char buf[512];
  for (ssize_t n; (n = read(fds[0], buf, sizeof buf)) > 0;) msg.append(buf, (size_t)n);
  close(fds[0]);
  const int status = testing::wait_status(pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  return msg;
}

std::vector<std::string> train_args(const std::string& dir, const std::string& out, const std::string& name) {
  return {testing::emotune_binary(), "train", "--name", name, "--out", out, "--data", dir + "/tiny.csv",
          "--epochs", "2", "--batch-size", "8", "--threads", "1", "--seed", "3"};
}

}  // namespace

TEST_CASE("SIGKILL at random points while checkpoints are written never leaves a corrupt file") {
  const std::string dir = testing::temp_dir("fault_kill_checkpoint");
  const std::string path = dir + "/last.safetensors";
  const int64_t floats = 1 << 20;  // 4 MiB: a write (with its fsync) takes milliseconds
  save_generation(path, 0, floats);
  // How long one write takes here, so the kills spread over whole writes.
  auto t0 = std::chrono::steady_clock::now();
  save_generation(path, 0, floats);
  const double write_us =
      std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();

  // Kill until enough kills have landed mid-write and enough writes have finished, whatever the
  // speed of this machine (a sanitizer build spends far longer outside the write than inside).
  const int kMidWrite = 40, kAdvanced = 12, kMaxTrials = 1000;
  int mid_write = 0, generations_seen = 0, trials = 0;
  int64_t last_generation = 0;
  for (int trial = 0; trial < kMaxTrials && (mid_write < kMidWrite || generations_seen < kAdvanced);
       ++trial, ++trials) {
    pid_t pid = fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      for (int64_t g = (int64_t)trial * 1000 + 1;; ++g) save_generation(path, g, floats);
    }
    // A delay uniform in [0, 3 writes): kills land before, during and between writes.
    const double delay_us = 3 * write_us * philox_uniform(99, (uint64_t)trial);
    std::this_thread::sleep_for(std::chrono::microseconds((int64_t)delay_us));
    kill(pid, SIGKILL);
    const int status = testing::wait_status(pid);
    REQUIRE(WIFSIGNALED(status));
    mid_write += count_temp_files(dir) > 0;
    // The file is always one whole generation: the previous trial's or one this child finished.
    int64_t g = -1;
    std::string err = testing::error_of([&] { g = check_generation(path); });
    INFO("trial " << trial << " after " << delay_us << " us");
    REQUIRE(err == "");
    CHECK(g >= last_generation);
    generations_seen += g != last_generation;
    last_generation = g;
    // What the trainer does at start: the dead writers' temporary files go, the checkpoint stays.
    remove_stale_temp_files(dir);
    REQUIRE(count_temp_files(dir) == 0);
  }
  MESSAGE(trials << " kills, " << mid_write << " with a write in progress, " << generations_seen
                 << " advanced the file; one write took " << write_us << " us");
  // The test must have hit writes in progress (else it proves nothing) and also let some finish.
  CHECK(mid_write >= kMidWrite);
  CHECK(generations_seen >= kAdvanced);
}

TEST_CASE("a full disk while writing a checkpoint: clear error, previous file intact, no temp file") {
  const std::string dir = testing::temp_dir("fault_full_disk");
  const std::string path = dir + "/last.safetensors";
  save_generation(path, 7, 1 << 10);
  const std::string msg =
      error_in_child(limit_file_size_to_256k, [&] { save_generation(path, 8, 1 << 20); });
  INFO(msg);
  CHECK(testing::contains(msg, "cannot write"));
  CHECK(testing::contains(msg, "last.safetensors"));
  CHECK(testing::contains(msg, "File too large"));
  CHECK(check_generation(path) == 7);
  CHECK(count_temp_files(dir) == 0);
}

TEST_CASE("training on a full disk stops with a clear error and a non-zero exit") {
  const std::string dir = testing::temp_dir("fault_train_full_disk");
  testing::write_synthetic_csv(dir, 24, 7);
  REQUIRE(fs::exists(testing::emotune_binary()));
  const std::string log = dir + "/stderr.txt";
  testing::SpawnOptions o{log, limit_file_size_to_256k};
  const int status = testing::run_command(train_args(dir, dir + "/runs", "full"), o);
  const std::string out = testing::read_text(log);
  INFO(out);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 1);
  CHECK(testing::contains(out, "cannot write"));
  CHECK(testing::contains(out, "File too large"));
  CHECK_FALSE(fs::exists(dir + "/runs/full/last.safetensors"));
  CHECK(count_temp_files(dir + "/runs/full") == 0);
}

TEST_CASE("an unwritable output folder gives a clear error naming it") {
  // Under /tmp (mode 1777) rather than the build tree: the unprivileged writer must be able to
  // reach it whatever the permissions of the folders above the checkout (e.g. /root is 0700).
  char tmpl[] = "/tmp/emotune-fault-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  const std::string dir = tmpl;
  chmod(dir.c_str(), 0755);
  TrainConfig c;
  c.data = dir + "/never-read.csv";  // the run folder is prepared before any data is read
  c.epochs = 1;
  c.threads = 1;

  // Runs the trainer as an unprivileged user into out/run and checks the message.
  auto expect_refused = [&](const std::string& out, const std::string& expected) {
    c.out = out;
    c.name = "run";
    const std::string msg = error_in_child(drop_root, [&] { run_training(c); });
    INFO(msg);
    CHECK(testing::contains(msg, expected));
    CHECK(testing::contains(msg, "Permission denied"));
  };
  SUBCASE("the folder that would hold the run folder is read-only") {
    fs::create_directories(dir + "/ro");
    chmod((dir + "/ro").c_str(), 0555);
    expect_refused(dir + "/ro", "cannot create run folder " + dir + "/ro/run");
  }
  SUBCASE("the run folder itself exists and is read-only") {
    fs::create_directories(dir + "/out/run");
    chmod((dir + "/out").c_str(), 0755);
    chmod((dir + "/out/run").c_str(), 0555);
    expect_refused(dir + "/out", "cannot create " + dir + "/out/run/.config.json.tmp.");
  }
  SUBCASE("through the command line: the output path is a file, exit status 1") {
    testing::write_synthetic_csv(dir, 8, 7);
    std::ofstream(dir + "/file") << "x";
    const std::string log = dir + "/stderr.txt";
    const int status = testing::run_command(train_args(dir, dir + "/file", "run"), {log, nullptr});
    const std::string out = testing::read_text(log);
    INFO(out);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 1);
    CHECK(testing::contains(out, "cannot create run folder " + dir + "/file/run"));
  }
  fs::remove_all(dir);
}

TEST_CASE("a loss that explodes after good epochs stops, names the step and keeps the last good checkpoint") {
  const std::string dir = testing::temp_dir("fault_explode_late");
  testing::write_synthetic_csv(dir, 32, 7);
  TrainConfig c = testing::tiny_train_config(dir, "late");
  c.epochs = 1;
  c.optimizer = "sgd";
  c.momentum = 0.9;
  c.augment = "none";
  run_training(c);
  const std::string last = dir + "/runs/late/last.safetensors";
  const std::string good = testing::read_text(last);
  REQUIRE(good.size() > 0);
  // The same run continued with a learning rate that diverges at once.
  c.epochs = 3;
  c.lr = 1e6;
  std::string err = testing::error_of([&] { run_training(c, dir + "/runs/late"); });
  INFO(err);
  CHECK(testing::contains(err, "training stopped at epoch 2, step "));
  CHECK(testing::contains(err, "the last good checkpoint is " + last));
  CHECK(testing::read_text(last) == good);  // untouched, byte for byte
  Checkpoint ck = load_safetensors(last);
  CHECK(nlohmann::json::parse(ck.meta("train_state")).at("epochs_done") == 1);
}
