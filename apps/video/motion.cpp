#include "apps/video/motion.h"

#include <algorithm>
#include <cmath>
#include <opencv2/imgproc.hpp>

namespace emotune {

MotionStep track_face_motion(const cv::Mat& prev, const cv::Mat& cur, const FaceBox& box) {
  MotionStep r;
  const cv::Rect frame(0, 0, cur.cols, cur.rows);
  const cv::Rect face = cv::Rect(box.x, box.y, box.w, box.h) & frame;
  if (box.w <= 0 || box.h <= 0 || (double)face.area() < 0.5 * box.area()) return r;
  const int reach_x = (int)std::lround(kMotionSearch * box.w), reach_y = (int)std::lround(kMotionSearch * box.h);
  const cv::Rect search =
      cv::Rect(face.x - reach_x, face.y - reach_y, face.width + 2 * reach_x, face.height + 2 * reach_y) & frame;
  const double s = std::min(1.0, (double)kMotionPatchSide / std::max(face.width, face.height));
  cv::Mat tmpl, area;
  cv::resize(prev(face), tmpl, cv::Size(), s, s, cv::INTER_AREA);
  cv::resize(cur(search), area, cv::Size(), s, s, cv::INTER_AREA);
  if (tmpl.cols < 4 || tmpl.rows < 4 || area.cols < tmpl.cols || area.rows < tmpl.rows) return r;
  cv::Mat score;
  cv::matchTemplate(area, tmpl, score, cv::TM_CCOEFF_NORMED);
  double best = 0;
  cv::Point at;
  cv::minMaxLoc(score, nullptr, &best, nullptr, &at);
  r.score = best;
  if (!std::isfinite(best) || best < kMotionMinScore) return r;
  // A flat patch or a flat match (the face left a plain background) has no correlation to speak
  // of; OpenCV's normalised score is not reliable there, the contrast is.
  cv::Scalar mean_t, sd_t, mean_a, sd_a;
  cv::meanStdDev(tmpl, mean_t, sd_t);
  cv::meanStdDev(area(cv::Rect(at.x, at.y, tmpl.cols, tmpl.rows)), mean_a, sd_a);
  if (sd_t[0] < kMotionMinContrast || sd_a[0] < 0.5 * sd_t[0]) return r;
  // Where the clipped patch went, then the whole box by the same shift.
  const int nx = search.x + (int)std::lround(at.x / s), ny = search.y + (int)std::lround(at.y / s);
  r.found = true;
  r.box = {box.x + (nx - face.x), box.y + (ny - face.y), box.w, box.h};
  return r;
}

}  // namespace emotune
