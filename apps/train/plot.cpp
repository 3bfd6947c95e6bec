#include "apps/train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "base/image.h"

namespace emotune {

namespace {

const cv::Scalar kColours[] = {{200, 90, 30}, {40, 120, 230}, {60, 170, 60}, {160, 60, 160}};
const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img, const std::string& s, cv::Point p, double scale = 0.45, cv::Scalar c = kInk) {
  cv::putText(img, s, p, kFont, scale, c, 1, cv::LINE_AA);
}

std::string num(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, std::fabs(v) >= 10 ? "%.0f" : "%.2f", v);
  return buf;
}

// One panel: axes, grid, tick labels and the series as polylines with a legend.
// The legend goes in a corner the curves usually leave free: losses fall (upper right is free
// late in training), accuracies rise (lower right).
void panel(cv::Mat& img, cv::Rect area, const std::vector<CurveSeries>& series, const std::string& ylabel,
           bool legend_low) {
  double lo = INFINITY, hi = -INFINITY;
  size_t n = 0;
  for (const auto& s : series) {
    n = std::max(n, s.values.size());
    for (double v : s.values)
      if (std::isfinite(v)) lo = std::min(lo, v), hi = std::max(hi, v);
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  if (hi - lo < 1e-9) hi = lo + 1;
  double pad = 0.05 * (hi - lo);
  lo -= pad;
  hi += pad;
  cv::Rect plot(area.x + 55, area.y + 30, area.width - 75, area.height - 75);
  cv::rectangle(img, plot, kInk, 1);
  for (int i = 0; i <= 4; ++i) {
    int y = plot.y + plot.height - i * plot.height / 4;
    cv::line(img, {plot.x + 1, y}, {plot.x + plot.width - 1, y}, kGrid, 1);
    text(img, num(lo + (hi - lo) * i / 4), {area.x + 5, y + 4}, 0.4);
  }
  size_t xt = std::max<size_t>(1, n / 6);
  for (size_t e = 0; e < n; e += xt) {
    int x = plot.x + (n > 1 ? (int)(e * plot.width / (n - 1)) : plot.width / 2);
    text(img, std::to_string(e + 1), {x - 5, plot.y + plot.height + 16}, 0.4);
  }
  text(img, "epoch", {plot.x + plot.width / 2 - 20, plot.y + plot.height + 36}, 0.45);
  text(img, ylabel, {plot.x, area.y + 20}, 0.5);
  for (size_t k = 0; k < series.size(); ++k) {
    const auto& s = series[k];
    // Lines join consecutive epochs only: a gap (NaN, e.g. a reference log with epochs 1-5 and 30)
    // shows as separate points, not as a straight line across epochs nobody measured.
    const cv::Scalar c = kColours[k % 4];
    std::vector<cv::Point> run;
    auto draw_run = [&] {
      if (run.size() > 1) cv::polylines(img, run, false, c, 2, cv::LINE_AA);
      for (auto& p : run) cv::circle(img, p, run.size() > 1 ? 2 : 4, c, cv::FILLED, cv::LINE_AA);
      run.clear();
    };
    for (size_t e = 0; e < s.values.size(); ++e) {
      if (!std::isfinite(s.values[e])) {
        draw_run();
        continue;
      }
      int x = plot.x + (n > 1 ? (int)(e * plot.width / (n - 1)) : plot.width / 2);
      int y = plot.y + plot.height - (int)((s.values[e] - lo) / (hi - lo) * plot.height);
      run.push_back({x, y});
    }
    draw_run();
    int ly = legend_low ? plot.y + plot.height - 8 - 16 * (int)(series.size() - 1 - k) : plot.y + 14 + 16 * (int)k;
    // Right-aligned, so that long labels (a reference log) fit.
    int tw = cv::getTextSize(s.label, kFont, 0.4, 1, nullptr).width;
    int lx = plot.x + plot.width - tw - 35;
    cv::line(img, {lx, ly - 4}, {lx + 20, ly - 4}, c, 2);
    text(img, s.label, {lx + 25, ly}, 0.4);
  }
}

void write_png(const std::string& path, const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  save_png(path, rgb.cols, rgb.rows, 3, rgb.data);
}

}  // namespace

void plot_training_curves(const std::string& path, const std::vector<CurveSeries>& losses,
                          const std::vector<CurveSeries>& accuracies, const std::string& title) {
  cv::Mat img(420, 1000, CV_8UC3, kWhite);
  text(img, title, {10, 20}, 0.55);
  panel(img, {0, 25, 500, 395}, losses, "loss", false);
  panel(img, {500, 25, 500, 395}, accuracies, "accuracy (%)", true);
  write_png(path, img);
}

void plot_confusion_matrix(const std::string& path, const std::vector<std::vector<int>>& confusion,
                           const std::vector<std::string>& names, const std::string& title) {
  const int n = (int)confusion.size(), cell = 62, left = 95, top = 60;
  cv::Mat img(top + n * cell + 60, left + n * cell + 20, CV_8UC3, kWhite);
  text(img, title, {10, 20}, 0.5);
  text(img, "predicted", {left + n * cell / 2 - 30, 42}, 0.45);
  for (int r = 0; r < n; ++r) {
    int total = 0;
    for (int c = 0; c < n; ++c) total += confusion[r][c];
    text(img, names[r], {5, top + r * cell + cell / 2 + 5}, 0.45);
    for (int c = 0; c < n; ++c) {
      double frac = total ? (double)confusion[r][c] / total : 0;
      // White to deep blue by the share of the true class's samples.
      cv::Scalar fill(255 - 80 * frac, 255 - 200 * frac, 255 - 230 * frac);
      cv::Rect box(left + c * cell, top + r * cell, cell, cell);
      cv::rectangle(img, box, fill, cv::FILLED);
      cv::rectangle(img, box, kGrid, 1);
      cv::Scalar ink = frac > 0.5 ? kWhite : kInk;
      text(img, std::to_string(confusion[r][c]), {box.x + 6, box.y + 26}, 0.45, ink);
      char pct[16];
      std::snprintf(pct, sizeof pct, "%.0f%%", 100 * frac);
      text(img, pct, {box.x + 6, box.y + 46}, 0.4, ink);
    }
  }
  for (int c = 0; c < n; ++c)
    text(img, names[c].substr(0, 8), {left + c * cell + 3, top + n * cell + 18}, 0.4);
  text(img, "rows: true class", {5, top + n * cell + 45}, 0.4);
  write_png(path, img);
}

}  // namespace emotune
