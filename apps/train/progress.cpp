#include "apps/train/progress.h"

#include <unistd.h>

#include <cstdio>

namespace emotune {

std::string format_duration(double s) {
  char buf[32];
  if (!(s >= 0) || s > 1e7) return "?";
  int t = (int)(s + 0.5);
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%dh%02dm", t / 3600, t / 60 % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%dm%02ds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ds", t);
  return buf;
}

Progress::Progress(std::string label, int64_t total, const char* unit)
    : label_(std::move(label)), total_(total), unit_(unit), tty_(isatty(fileno(stderr))),
      start_(std::chrono::steady_clock::now()), last_(start_) {}

double Progress::elapsed() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

void Progress::update(int64_t done, int64_t items, const std::string& extra) {
  auto now = std::chrono::steady_clock::now();
  int decile = total_ > 0 ? (int)(10 * done / total_) : 0;
  if (tty_) {
    if (done < total_ && std::chrono::duration<double>(now - last_).count() < 0.25) return;
  } else if (decile == last_decile_ || done == 0) {
    return;
  }
  last_ = now;
  last_decile_ = decile;
  double t = elapsed();
  double rate = t > 0 ? items / t : 0;
  double eta = done > 0 ? t * (double)(total_ - done) / (double)done : -1;
  std::fprintf(stderr, "%s%s [%lld/%lld] %s  %.0f %s/s  ETA %s%s", tty_ ? "\r" : "", label_.c_str(),
               (long long)done, (long long)total_, extra.c_str(), rate, unit_,
               format_duration(eta).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(stderr);
}

void Progress::finish(const std::string& extra) {
  std::fprintf(stderr, "%s%s done in %s %s%s\n", tty_ ? "\r" : "", label_.c_str(),
               format_duration(elapsed()).c_str(), extra.c_str(), tty_ ? "\033[K" : "");
  std::fflush(stderr);
}

}  // namespace emotune
