// Pictures from a watch run (OpenCV imgproc; PNGs written by base/image.h save_png, as apps/train's
// plots): the annotations drawn on each frame of --out, and the --plot timeline.
#pragma once
#include <opencv2/core.hpp>
#include <string>
#include <vector>

#include "apps/video/timeline.h"

namespace emotune {

// One colour per class name (BGR), the same in the video and the plot: angry red, disgust green,
// fear purple, happy yellow, sad blue, surprise orange, neutral grey, others dark grey.
cv::Scalar class_colour(const std::string& name);

struct FaceAnnotation {
  int track = 0;
  FaceBox box;
  std::vector<double> probabilities;  // smoothed, model class order
  size_t label = 0;
  bool unsure = false;  // the smoothed top probability is below --unsure-below
};

// Box in the label's colour, "#id label 72%" (or "#id unsure: sad 38% / neutral 34%") above it, and one bar per class beside it (right of
// the box, or left when there is no room).
void draw_annotations(cv::Mat& bgr, const std::vector<FaceAnnotation>& faces,
                      const std::vector<std::string>& classes);

// Two panels, over the clip's time axis: the stacked shares of each emotion (mean smoothed
// probabilities of the faces in view; white where no face is in view), and for the liveliest
// track (largest mean frame-to-frame change of its raw probabilities: where smoothing has the most
// to do) its raw (thin) against smoothed (thick) probabilities of the classes that reach 15%.
// Throws emotune::Error naming the path when it cannot be written.
void plot_timeline(const std::string& path, const std::vector<TimelineRow>& rows,
                   const std::vector<std::string>& classes, double duration_s, double fps,
                   const std::string& title);

// Writes a BGR image as PNG (save_png, base/image.h). Throws emotune::Error naming the path.
void write_png_bgr(const std::string& path, const cv::Mat& bgr);

}  // namespace emotune
