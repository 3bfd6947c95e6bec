#include "apps/train/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>
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

namespace {

// One reliability panel in `area`: confidence (x) against accuracy (y), both 0..1.
void reliability_panel(cv::Mat& img, cv::Rect area, const ReliabilityPanel& p) {
  const CalibrationStats& s = p.stats;
  const cv::Rect plot(area.x + 50, area.y + 30, area.width - 70, area.width - 70);
  char head[160];
  std::snprintf(head, sizeof head, "%s: ECE %.4f, NLL %.4f", p.heading.c_str(), s.ece, s.nll);
  text(img, head, {plot.x, area.y + 18}, 0.48);
  auto px = [&](double v) { return plot.x + (int)std::lround(v * plot.width); };
  auto py = [&](double v) { return plot.y + plot.height - (int)std::lround(v * plot.height); };
  for (int i = 0; i <= 5; ++i) {
    const double v = i / 5.0;
    cv::line(img, {plot.x + 1, py(v)}, {plot.x + plot.width - 1, py(v)}, kGrid, 1);
    text(img, num(v), {area.x + 12, py(v) + 4}, 0.4);
    text(img, num(v), {px(v) - 12, plot.y + plot.height + 16}, 0.4);
  }
  const int bins = (int)s.bins.size();
  const cv::Scalar bar(200, 140, 60), gap(60, 60, 220);
  int64_t most = 1;
  for (const ConfidenceBin& bin : s.bins) most = std::max(most, bin.count);
  auto columns = [&](int b) { return std::pair(px((double)b / bins) + 1, px((double)(b + 1) / bins) - 1); };
  for (int b = 0; b < bins; ++b) {
    const ConfidenceBin& bin = s.bins[b];
    if (!bin.count) continue;
    const auto [x0, x1] = columns(b);
    cv::rectangle(img, cv::Point(x0, py(bin.accuracy)), cv::Point(x1, py(0)), bar, cv::FILLED);
    // The faces in the bin, relative to the fullest bin, as a strip under the axis labels.
    const int h = (int)std::lround(30.0 * bin.count / most);
    cv::rectangle(img, cv::Point(x0, plot.y + plot.height + 72 - h), cv::Point(x1, plot.y + plot.height + 72),
                  cv::Scalar(150, 150, 150), cv::FILLED);
  }
  // The gaps translucent over the bars, so that a gap inside a bar (accuracy above confidence)
  // still shows.
  cv::Mat overlay = img.clone();
  for (int b = 0; b < bins; ++b) {
    const ConfidenceBin& bin = s.bins[b];
    if (!bin.count) continue;
    const auto [x0, x1] = columns(b);
    cv::rectangle(overlay, cv::Point(x0, py(bin.accuracy)), cv::Point(x1, py(bin.confidence)), gap, cv::FILLED);
  }
  cv::addWeighted(overlay, 0.45, img, 0.55, 0, img);
  cv::line(img, {px(0), py(0)}, {px(1), py(1)}, kInk, 1, cv::LINE_AA);
  cv::rectangle(img, plot, kInk, 1);
  text(img, "confidence (largest probability)", {plot.x + plot.width / 2 - 115, plot.y + plot.height + 32}, 0.45);
  text(img, "faces per bin (fullest: " + std::to_string(most) + ")",
       {plot.x + plot.width - 160, plot.y + plot.height + 86}, 0.4);
  cv::rectangle(img, cv::Rect(plot.x + 8, plot.y + 8, 12, 10), bar, cv::FILLED);
  text(img, "accuracy of the bin", {plot.x + 25, plot.y + 18}, 0.4);
  cv::rectangle(img, cv::Rect(plot.x + 8, plot.y + 24, 12, 10), gap * 0.45 + kWhite * 0.55, cv::FILLED);
  text(img, "gap to mean confidence (dark: in the bar)", {plot.x + 25, plot.y + 34}, 0.4);
}

}  // namespace

void plot_reliability_diagram(const std::string& path, const std::vector<ReliabilityPanel>& panels,
                              const std::string& title) {
  const int w = 440;
  cv::Mat img(w + 100, std::max<int>(1, (int)panels.size()) * w, CV_8UC3, kWhite);
  text(img, title, {10, 20}, 0.55);
  for (size_t i = 0; i < panels.size(); ++i) reliability_panel(img, {(int)i * w, 30, w, w + 70}, panels[i]);
  write_png(path, img);
}

}  // namespace emotune
