#include "apps/video/draw.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <opencv2/imgproc.hpp>

#include "base/error.h"
#include "apps/pipeline/pipeline.h"
#include "base/image.h"


namespace emotune {

namespace {

const cv::Scalar kInk(40, 40, 40), kGrid(225, 225, 225), kWhite(255, 255, 255);
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

void text(cv::Mat& img, const std::string& s, cv::Point p, double scale, cv::Scalar c = kInk,
          int thick = 1) {
  cv::putText(img, s, p, kFont, scale, c, thick, cv::LINE_AA);
}

}  // namespace

cv::Scalar class_colour(const std::string& name) {
  static const std::map<std::string, cv::Scalar> colours = {
      {"angry", {40, 40, 220}},     {"disgust", {60, 150, 40}},  {"fear", {160, 60, 150}},
      {"happy", {30, 200, 240}},    {"sad", {200, 110, 30}},     {"surprise", {20, 140, 255}},
      {"neutral", {160, 160, 160}}, {"contempt", {90, 90, 140}}};
  auto it = colours.find(name);
  return it == colours.end() ? cv::Scalar(90, 90, 90) : it->second;
}

void draw_annotations(cv::Mat& img, const std::vector<FaceAnnotation>& faces,
                      const std::vector<std::string>& classes) {
  const double scale = std::clamp(img.rows / 700.0, 0.35, 1.0);
  const int line_h = std::max(10, (int)std::lround(24 * scale));
  const int bar_w = std::max(40, (int)std::lround(120 * scale));
  for (const auto& f : faces) {
    // An unsure face is drawn in the neutral grey of no class, with its two likeliest moods.
    const cv::Scalar c = f.unsure ? cv::Scalar(150, 150, 150) : class_colour(classes.at(f.label));
    cv::rectangle(img, cv::Rect(f.box.x, f.box.y, f.box.w, f.box.h), c, 2, cv::LINE_AA);
    char head[128];
    if (f.unsure) {
      const std::vector<float> p(f.probabilities.begin(), f.probabilities.end());
      std::snprintf(head, sizeof head, "#%d %s", f.track, mood_text(p, classes, true).c_str());
    } else {
      std::snprintf(head, sizeof head, "#%d %s %.0f%%", f.track, classes.at(f.label).c_str(),
                    100 * f.probabilities.at(f.label));
    }
    int base = 0;
    cv::Size ts = cv::getTextSize(head, kFont, scale, 1, &base);
    cv::Point org(f.box.x, std::max(ts.height + 4, f.box.y - 6));
    cv::rectangle(img, cv::Rect(org.x - 2, org.y - ts.height - 3, ts.width + 4, ts.height + base + 5), c,
                  cv::FILLED);
    text(img, head, org, scale, kInk);
    // Bars: label column (3 letters) + bar, one row per class.
    const int label_w = cv::getTextSize("neu", kFont, scale * 0.8, 1, &base).width + 6;
    const int panel_w = label_w + bar_w + 6;
    int px = f.box.x + f.box.w + 6;
    if (px + panel_w > img.cols) px = std::max(0, f.box.x - panel_w - 6);
    int py = std::clamp(f.box.y, 0, std::max(0, img.rows - (int)classes.size() * line_h));
    for (size_t k = 0; k < classes.size(); ++k) {
      const int y = py + (int)k * line_h;
      cv::rectangle(img, cv::Rect(px, y, panel_w, line_h), cv::Scalar(30, 30, 30), cv::FILLED);
      const int w = (int)std::lround(bar_w * std::clamp(f.probabilities.at(k), 0.0, 1.0));
      if (w > 0)
        cv::rectangle(img, cv::Rect(px + label_w, y + 2, w, line_h - 4), class_colour(classes[k]),
                      cv::FILLED);
      text(img, classes[k].substr(0, 3), {px + 2, y + line_h - 4}, scale * 0.8, kWhite);
    }
  }
}

void write_png_bgr(const std::string& path, const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  save_png(path, rgb.cols, rgb.rows, 3, rgb.data, (int)rgb.step);
}

namespace {

// A plot's frame, its 0-100% ticks, its time ticks over [0, dur] seconds and its title above.
void draw_axis(cv::Mat& img, cv::Rect plot, const std::string& ylabel, double dur) {
  cv::rectangle(img, plot, kInk, 1);
  for (int i = 0; i <= 4; ++i) {
    int y = plot.y + plot.height - i * plot.height / 4;
    char b[16];
    std::snprintf(b, sizeof b, "%d%%", 25 * i);
    text(img, b, {plot.x - 42, y + 4}, 0.4);
  }
  for (int i = 0; i <= 8; ++i) {
    int x = plot.x + i * plot.width / 8;
    char b[16];
    std::snprintf(b, sizeof b, "%.1f", dur * i / 8);
    text(img, b, {x - 10, plot.y + plot.height + 16}, 0.4);
  }
  text(img, "seconds", {plot.x + plot.width / 2 - 25, plot.y + plot.height + 34}, 0.45);
  text(img, ylabel, {plot.x, plot.y - 8}, 0.5);
}

// Panel 1: stacked mean smoothed shares per pixel column, then its axis and the class legend.
void draw_shares_panel(cv::Mat& img, cv::Rect top, const std::vector<TimelineRow>& rows,
                       const std::vector<std::string>& classes, double dur, double fps) {
  const size_t n = classes.size();
  std::vector<std::vector<double>> col(top.width, std::vector<double>(n, 0));
  std::vector<int> count(top.width, 0);
  for (const auto& r : rows) {  // each row covers its frame's time span, at least one column
    int x0 = std::clamp((int)(r.time_s / dur * top.width), 0, top.width - 1);
    int x1 = std::clamp((int)std::ceil((r.time_s + 1 / fps) / dur * top.width), x0 + 1, top.width);
    for (int x = x0; x < x1; ++x) {
      ++count[x];
      for (size_t c = 0; c < n && c < r.smoothed.size(); ++c) col[x][c] += r.smoothed[c];
    }
  }
  for (int x = 0; x < top.width; ++x) {
    if (!count[x]) continue;
    double total = 0;
    for (double v : col[x]) total += v;
    if (total <= 0) continue;
    double acc = 0;
    for (size_t c = 0; c < n; ++c) {
      double v = col[x][c] / total;
      int y0 = top.y + top.height - (int)std::lround(acc * top.height);
      acc += v;
      int y1 = top.y + top.height - (int)std::lround(acc * top.height);
      if (y0 > y1) cv::line(img, {top.x + x, y0}, {top.x + x, y1}, class_colour(classes[c]), 1);
    }
  }
  draw_axis(img, top, "emotion shares over time (smoothed, all faces in view)", dur);
  for (size_t c = 0; c < n; ++c) {
    int y = top.y + 12 + 20 * (int)c;
    cv::rectangle(img, cv::Rect(top.x + top.width + 15, y - 10, 14, 12), class_colour(classes[c]), cv::FILLED);
    text(img, classes[c], {top.x + top.width + 35, y}, 0.45);
  }
}

// The liveliest track (largest mean frame-to-frame change of its raw probabilities, L1): where
// smoothing has the most to do. 0 when no track has two frames.
int liveliest_track(const std::vector<TimelineRow>& rows, size_t n) {
  std::map<int, std::pair<double, int>> change;  // id -> (sum of changes, frames)
  std::map<int, const TimelineRow*> prev;
  for (const auto& r : rows) {
    auto& [sum, k] = change[r.track];
    if (prev.count(r.track))
      for (size_t c = 0; c < n && c < r.raw.size(); ++c) sum += std::fabs(r.raw[c] - prev[r.track]->raw[c]);
    ++k;
    prev[r.track] = &r;
  }
  int longest = 0;
  double most = -1;
  for (auto& [id, v] : change)
    if (v.second > 1 && v.first / v.second > most) longest = id, most = v.first / v.second;
  return longest;
}

// Panel 2: one track's raw (thin) and smoothed (thick) probabilities of the classes that reach 15%.
void draw_track_panel(cv::Mat& img, cv::Rect bot, const std::vector<TimelineRow>& rows,
                      const std::vector<std::string>& classes, double dur, int track) {
  const size_t n = classes.size();
  draw_axis(img, bot, track ? "track #" + std::to_string(track) + ": raw (thin) vs smoothed (thick)" : "no face in view",
            dur);
  std::vector<double> peak(n, 0);
  for (const auto& r : rows)
    if (r.track == track)
      for (size_t c = 0; c < n && c < r.smoothed.size(); ++c) peak[c] = std::max(peak[c], r.smoothed[c]);
  int legend = 0;
  for (size_t c = 0; c < n; ++c) {
    if (peak[c] < 0.15) continue;
    std::vector<cv::Point> raw, sm;
    for (const auto& r : rows) {
      if (r.track != track) continue;
      int x = bot.x + std::clamp((int)(r.time_s / dur * bot.width), 0, bot.width - 1);
      raw.push_back({x, bot.y + bot.height - (int)std::lround(r.raw[c] * bot.height)});
      sm.push_back({x, bot.y + bot.height - (int)std::lround(r.smoothed[c] * bot.height)});
    }
    const cv::Scalar col_c = class_colour(classes[c]);
    if (raw.size() > 1) cv::polylines(img, raw, false, col_c, 1, cv::LINE_AA);
    if (sm.size() > 1) cv::polylines(img, sm, false, col_c * 0.8, 3, cv::LINE_AA);
    int y = bot.y + 12 + 20 * legend++;
    cv::line(img, {bot.x + bot.width + 15, y - 4}, {bot.x + bot.width + 30, y - 4}, col_c, 3);
    text(img, classes[c], {bot.x + bot.width + 35, y}, 0.45);
  }
}

}  // namespace

void plot_timeline(const std::string& path, const std::vector<TimelineRow>& rows,
                   const std::vector<std::string>& classes, double duration_s, double fps,
                   const std::string& title) {
  cv::Mat img(640, 1000, CV_8UC3, kWhite);
  text(img, title, {10, 20}, 0.55);
  const double dur = duration_s > 0 ? duration_s : 1;
  draw_shares_panel(img, cv::Rect(60, 50, 800, 230), rows, classes, dur, fps);
  draw_track_panel(img, cv::Rect(60, 360, 800, 220), rows, classes, dur, liveliest_track(rows, classes.size()));
  write_png_bgr(path, img);
}

}  // namespace emotune
