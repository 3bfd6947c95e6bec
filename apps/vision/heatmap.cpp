#include "apps/vision/heatmap.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <opencv2/imgproc.hpp>

#include "base/error.h"

namespace emotune {

namespace {

constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;
const cv::Scalar kInk(40, 40, 40), kWhite(255, 255, 255);

void check(const HeatMap& h) {
  if (h.height < 1 || h.width < 1 || h.values.size() != (size_t)h.height * h.width)
    throw Error("heat map: " + std::to_string(h.values.size()) + " values for " + std::to_string(h.height) +
                "x" + std::to_string(h.width));
}

// The map at `size`, divided by its maximum (all zeros stay zeros), as 8-bit and as float.
void normalised(const HeatMap& h, cv::Size size, cv::Mat* level, cv::Mat* weight) {
  check(h);
  cv::Mat coarse(h.height, h.width, CV_32F, const_cast<float*>(h.values.data()));
  cv::Mat fine;
  cv::resize(coarse, fine, size, 0, 0, cv::INTER_LINEAR);
  const float mx = h.max();
  fine = mx > 0 ? fine / mx : fine * 0;
  cv::max(fine, 0, fine);
  cv::min(fine, 1, fine);
  fine.convertTo(*level, CV_8U, 255);
  *weight = fine;
}

}  // namespace

float HeatMap::max() const { return values.empty() ? 0.0f : *std::max_element(values.begin(), values.end()); }

void blend_heat(uint8_t* data, int width, int height, size_t row_bytes, FaceBox box, const HeatMap& heat,
                double alpha) {
  cv::Mat bgr(height, width, CV_8UC3, data, row_bytes);
  cv::Rect where = cv::Rect(box.x, box.y, box.w, box.h) & cv::Rect(0, 0, bgr.cols, bgr.rows);
  if (where.width < 1 || where.height < 1 || heat.max() <= 0) return;
  cv::Mat level, weight, colour;
  normalised(heat, where.size(), &level, &weight);
  cv::applyColorMap(level, colour, cv::COLORMAP_JET);
  cv::Mat roi = bgr(where);
  for (int y = 0; y < roi.rows; ++y) {
    auto* px = roi.ptr<cv::Vec3b>(y);
    const auto* c = colour.ptr<cv::Vec3b>(y);
    const float* w = weight.ptr<float>(y);
    for (int x = 0; x < roi.cols; ++x) {
      const double a = alpha * w[x];
      for (int k = 0; k < 3; ++k) px[x][k] = cv::saturate_cast<uchar>((1 - a) * px[x][k] + a * c[x][k]);
    }
  }
}

namespace {

// The picture (BGR) of write_explanation_png, see heatmap.h.
cv::Mat render_explanation(const GrayImage& face, const HeatMap& heat, const std::string& caption,
                           const std::string& note, int side) {
  if (face.width < 1 || face.height < 1) throw Error("render_explanation: empty face");
  check(heat);
  const int top = 34, bottom = 30, bar = 16, right = 70, pad = 10;
  cv::Mat img(top + side + bottom, pad + side + pad + bar + right, CV_8UC3, kWhite);
  cv::Mat gray(face.height, face.width, CV_8U, const_cast<uint8_t*>(face.pixels.data())), big, bgr;
  cv::resize(gray, big, {side, side}, 0, 0, cv::INTER_LINEAR);
  cv::cvtColor(big, bgr, cv::COLOR_GRAY2BGR);
  blend_heat(bgr.data, bgr.cols, bgr.rows, bgr.step, {0, 0, side, side}, heat);
  bgr.copyTo(img(cv::Rect(pad, top, side, side)));
  cv::putText(img, caption, {pad, 24}, kFont, 0.65, kInk, 1, cv::LINE_AA);
  const bool empty = heat.max() <= 0;
  cv::putText(img, empty ? note + ": no positive evidence for this class" : note, {pad, top + side + 20}, kFont,
              0.4, kInk, 1, cv::LINE_AA);
  // The colour bar: the map's maximum at the top, 0 at the bottom (the blend's scale).
  const int bx = pad + side + pad;
  cv::Mat ramp(side, 1, CV_8U);
  for (int y = 0; y < side; ++y) ramp.at<uchar>(y) = (uchar)std::lround(255.0 * (side - 1 - y) / (side - 1));
  cv::Mat ramp_colour;
  cv::applyColorMap(ramp, ramp_colour, cv::COLORMAP_JET);
  cv::resize(ramp_colour, ramp_colour, {bar, side}, 0, 0, cv::INTER_NEAREST);
  ramp_colour.copyTo(img(cv::Rect(bx, top, bar, side)));
  cv::rectangle(img, cv::Rect(bx, top, bar, side), kInk, 1);
  char hi[32];
  std::snprintf(hi, sizeof hi, "%.3g", heat.max());
  cv::putText(img, hi, {bx + bar + 4, top + 10}, kFont, 0.4, kInk, 1, cv::LINE_AA);
  cv::putText(img, "0", {bx + bar + 4, top + side}, kFont, 0.4, kInk, 1, cv::LINE_AA);
  cv::putText(img, "high", {bx + bar + 4, top + 26}, kFont, 0.35, kInk, 1, cv::LINE_AA);
  return img;
}

cv::Mat to_rgb(const cv::Mat& bgr) {
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}
}  // namespace

void write_explanation_png(const std::string& path, const GrayImage& face, const HeatMap& heat,
                           const std::string& caption, const std::string& note, int side) {
  const cv::Mat rgb = to_rgb(render_explanation(face, heat, caption, note, side));
  save_png(path, rgb.cols, rgb.rows, 3, rgb.data, (int)rgb.step);
}

std::vector<uint8_t> encode_explanation_png(const GrayImage& face, const HeatMap& heat, const std::string& caption,
                                            const std::string& note, int side) {
  const cv::Mat rgb = to_rgb(render_explanation(face, heat, caption, note, side));
  return encode_png(rgb.cols, rgb.rows, 3, rgb.data, (int)rgb.step);
}

}  // namespace emotune
