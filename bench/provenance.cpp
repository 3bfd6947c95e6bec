// Host half of bench/provenance.h: date, commit, CPU, threads, OpenBLAS, load.
#include "bench/provenance.h"

#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <fstream>
#include <thread>

namespace emotune::bench {

namespace {

std::string cpu_model() {
  std::ifstream f("/proc/cpuinfo");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  return "unknown";
}

std::string load_average() {
  std::ifstream f("/proc/loadavg");
  std::string one, five, fifteen;
  if (!(f >> one >> five >> fifteen)) return "unknown";
  return one + " " + five + " " + fifteen;
}

}  // namespace

std::string commit() {
  if (const char* env = std::getenv("EMOTUNE_COMMIT"); env && *env) return env;
  const std::string cmd = std::string("git -C '") + EMOTUNE_SOURCE_DIR + "' rev-parse --short HEAD 2>/dev/null";
  FILE* p = popen(cmd.c_str(), "r");
  if (!p) return "unknown";
  char buf[64] = {0};
  std::string out = std::fgets(buf, sizeof buf, p) ? buf : "";
  pclose(p);
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out.empty() ? "unknown" : out;
}

void add_provenance() {
  char date[64];
  const std::time_t now = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&now));
  benchmark::AddCustomContext("emotune_date", date);
  benchmark::AddCustomContext("emotune_commit", commit());
  benchmark::AddCustomContext("emotune_cpu_model", cpu_model());
  benchmark::AddCustomContext("emotune_hardware_threads", std::to_string(std::thread::hardware_concurrency()));
  benchmark::AddCustomContext("emotune_omp_threads", std::to_string(omp_get_max_threads()));
  benchmark::AddCustomContext("emotune_openblas", std::string(openblas_get_config()) + ", " +
                                                      std::to_string(openblas_get_num_threads()) + " threads");
  benchmark::AddCustomContext("emotune_loadavg_at_start", load_average());
}

}  // namespace emotune::bench
