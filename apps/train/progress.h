// A progress line for long work: done/total, rate and ETA. On a terminal it redraws one line
// (carriage return) at most every 0.25 s; into a file or pipe it prints a line every 10 %.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace emotune {

class Progress {
 public:
  Progress(std::string label, int64_t total, const char* unit = "img");
  // `done` items so far, `items` for the rate (e.g. images when steps are counted), extra text.
  void update(int64_t done, int64_t items, const std::string& extra = "");
  void finish(const std::string& extra = "");
  double elapsed() const;

 private:
  std::string label_;
  int64_t total_;
  const char* unit_;
  bool tty_;
  std::chrono::steady_clock::time_point start_, last_;
  int last_decile_ = -1;
};

std::string format_duration(double seconds);  // "1h02m", "3m05s", "12s"

}  // namespace emotune
