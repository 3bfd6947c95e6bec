#include "tests/testing.h"

#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "engine/dispatch.h"
#include "kernels/philox.h"

namespace emotune::testing {

std::vector<float> random_vector(size_t n, uint64_t seed, float lo, float hi) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * philox_uniform(seed, i);
  return v;
}

std::vector<double> random_vector_double(size_t n, uint64_t seed, double lo, double hi) {
  std::vector<double> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = lo + (hi - lo) * (double)philox_uniform(seed, i);
  return v;
}

CloseReport allclose(const float* got, const float* want, size_t n, double atol, double rtol) {
  CloseReport r;
  r.worst_excess = -INFINITY;
  for (size_t i = 0; i < n; ++i) {
    double g = got[i], w = want[i];
    double excess = std::fabs(g - w) - (atol + rtol * std::fabs(w));
    bool bad = !(excess <= 0) || std::isnan(g) != std::isnan(w);
    if (std::isnan(excess)) excess = INFINITY;
    if (bad) ++r.mismatches;
    if (excess > r.worst_excess) {
      r.worst_excess = excess;
      r.worst_index = i;
      r.worst_got = g;
      r.worst_want = w;
    }
  }
  r.ok = r.mismatches == 0;
  std::ostringstream os;
  os << r.mismatches << " of " << n << " elements differ; worst at [" << r.worst_index
     << "]: got " << r.worst_got << " want " << r.worst_want << " (atol " << atol << ", rtol "
     << rtol << ")";
  r.message = os.str();
  return r;
}

CloseReport allclose(const std::vector<float>& got, const std::vector<float>& want, double atol,
                     double rtol) {
  if (got.size() != want.size()) {
    CloseReport r;
    r.ok = false;
    r.message = "sizes differ: got " + std::to_string(got.size()) + " want " +
                std::to_string(want.size());
    return r;
  }
  return allclose(got.data(), want.data(), got.size(), atol, rtol);
}

std::string close_double(const std::vector<double>& got, const std::vector<double>& want,
                         double atol, double rtol, bool* ok) {
  size_t worst = 0, bad = 0;
  double worst_excess = -INFINITY;
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) {
    double excess = std::fabs(got[i] - want[i]) - (atol + rtol * std::fabs(want[i]));
    if (!(excess <= 0)) ++bad;
    if (std::isnan(excess)) excess = INFINITY;
    if (excess > worst_excess) worst_excess = excess, worst = i;
  }
  *ok = got.size() == want.size() && bad == 0;
  std::ostringstream os;
  os << bad << " of " << got.size() << " differ; worst at [" << worst << "]: got "
     << (got.empty() ? 0 : got[worst]) << " want " << (want.empty() ? 0 : want[worst]);
  return os.str();
}

std::vector<double> every(const std::vector<double>& v, size_t step) {
  std::vector<double> out;
  for (size_t i = 0; i < v.size(); i += step) out.push_back(v[i]);
  return out;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

bool bit_equal(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string source_dir() { return EMOTUNE_SOURCE_DIR; }
std::string shared_dir() { return EMOTUNE_SHARED_DIR; }
bool shared_available() { return std::filesystem::is_directory(shared_dir() + "/data"); }

std::string temp_dir(const std::string& name) {
  namespace fs = std::filesystem;
  fs::path p = fs::path(EMOTUNE_BINARY_DIR) / "test-tmp" / name;
  fs::remove_all(p);
  fs::create_directories(p);
  return p.string();
}

std::string write_synthetic_csv(const std::string& dir, int train_rows, int val_rows) {
  std::string path = dir + "/tiny.csv";
  std::ofstream f(path);
  f << "emotion,pixels,Usage\n";
  for (int i = 0; i < train_rows + val_rows; ++i) {
    int c = i % 7;
    f << c << ",";
    for (int p = 0; p < 48 * 48; ++p) {
      int row = p / 48;
      int v = (int)(60 * philox_uniform(7, (uint64_t)i * 2304 + p)) + (row >= 6 * c && row < 6 * c + 6 ? 150 : 20);
      f << (p ? " " : "") << v;
    }
    f << "," << (i < train_rows ? "Training" : "PublicTest") << "\n";
  }
  return path;
}

std::string emotune_binary() { return std::string(EMOTUNE_BINARY_DIR) + "/bin/emotune"; }

pid_t spawn(const std::vector<std::string>& args, const SpawnOptions& options) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    const char* log = options.log_path.empty() ? "/dev/null" : options.log_path.c_str();
    int fd = ::open(log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd >= 0) {
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      ::close(fd);
    }
    if (options.before_exec) options.before_exec();
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

int wait_status(pid_t pid) {
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return status;
}

int run_emotune(const std::string& args, const std::string& out) {
  const std::string cmd = emotune_binary() + " " + args + " > " + out + " 2> " + out + ".err";
  const int status = std::system(cmd.c_str());
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

int run_command(const std::vector<std::string>& args, const SpawnOptions& options) {
  return wait_status(spawn(args, options));
}

std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

namespace {
int g_skipped = 0;
}

int skipped_for_no_gpu() { return g_skipped; }

bool cuda_or_skip(const char* what) {
  if (cuda_available()) return true;
  ++g_skipped;
  std::printf("SKIPPED (no GPU): %s\n", what);
  std::fflush(stdout);
  return false;
}

bool isa_or_skip(bool has, const char* isa, const char* what) {
  if (has) return true;
  ++g_skipped;
  std::printf("SKIPPED (no %s): %s\n", isa, what);
  std::fflush(stdout);
  return false;
}

}  // namespace emotune::testing
