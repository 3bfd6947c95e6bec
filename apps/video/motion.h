// The cheap step between two face detections: move each face box from the previous frame to the
// current one by normalised cross-correlation of the face patch (cv::matchTemplate,
// TM_CCOEFF_NORMED) inside a search window around its old place. Both are downscaled so the face
// is kMotionPatchSide px wide: about 0.1 ms per face at 640x480, against ~50 ms for a Haar
// detection of the whole frame (docs/benchmarks.md). Scale changes and drift are corrected by
// the next detection round (apps/video/tracker.h).
#pragma once
#include <opencv2/core.hpp>

#include "base/image.h"

namespace emotune {

constexpr int kMotionPatchSide = 32;
// Below this correlation the patch is not found: the face left, turned away or was covered.
constexpr double kMotionMinScore = 0.5;
// Grey-level standard deviation below which a patch has no texture to follow (a face has 30-60).
constexpr double kMotionMinContrast = 4.0;
// The search window reaches this fraction of the face side beyond the old box on each side: at
// 30 fps a face rarely moves half its width between two frames.
constexpr double kMotionSearch = 0.5;

struct MotionStep {
  bool found = false;
  FaceBox box;        // the moved box (same size), when found
  double score = 0;   // best correlation in [-1, 1]
};

// prev and cur: 8-bit single-channel frames of the same size. Not found: a box less than half
// inside the frame, a score under kMotionMinScore, a patch without texture, or a best match with
// less than half the patch's contrast (the face left and the background is plain).
MotionStep track_face_motion(const cv::Mat& prev_gray, const cv::Mat& cur_gray, const FaceBox& box);

}  // namespace emotune
