// Face tracks across video frames: each person keeps an id while in view. Pure C++ on boxes (no
// OpenCV), so the unit tests and the fuzz target drive it with synthetic detections.
//
// The video loop (apps/video/watch.cpp) runs the face detector every k-th frame and calls
// update() with its boxes; in between (and, on a detection frame, for the tracks the detector
// missed) a cheap motion step (apps/video/motion.h, template matching) moves each track's box with
// move(), or ends it with drop() when the face is gone.
//
// Association (update): every (track, detection) pair with IoU >= min_iou is a candidate; pairs
// are taken greedily by IoU, highest first (ties: lower track id, then lower detection index), so
// the result does not depend on the order of the detections. A matched track takes the detected
// box. An unmatched detection starts a new track with the next id; ids are never reused, so an id
// in the timeline names one person. A track matched by no detection keeps its box and counts a
// miss; after more than max_missed consecutive missed detection rounds it is removed (the face
// left, or the frontal detector lost it for good).
#pragma once
#include <vector>

#include "base/image.h"

namespace emotune {

struct TrackerOptions {
  // Overlap needed to call a detection the same face. Between two detection rounds the motion
  // step keeps the box on the face, so a true match overlaps well above 0.3; two different people
  // side by side overlap far less.
  double min_iou = 0.3;
  // Detection rounds a track may go unmatched before it is removed: the Haar detector misses a
  // tilted or laughing face now and then, and one miss should not split a person into two ids.
  int max_missed = 2;
};

struct FaceTrack {
  int id = 0;
  FaceBox box;
  int missed = 0;  // consecutive detection rounds without a match
};

// Intersection over union of two boxes; 0 when either is empty.
double box_iou(const FaceBox& a, const FaceBox& b);

class FaceTracker {
 public:
  // Throws emotune::Error for min_iou outside (0, 1] or max_missed < 0.
  explicit FaceTracker(TrackerOptions options = {});

  // One detection round. Returns, for each detection, the id of the track it now belongs to.
  std::vector<int> update(const std::vector<FaceBox>& detections);
  // The motion step moved a track's box (no effect on an unknown id).
  void move(int id, const FaceBox& box);
  // The motion step lost the face: the track ends now.
  void drop(int id);

  const std::vector<FaceTrack>& tracks() const { return tracks_; }  // sorted by id
  int next_id() const { return next_id_; }

 private:
  TrackerOptions options_;
  std::vector<FaceTrack> tracks_;
  int next_id_ = 1;
};

}  // namespace emotune
