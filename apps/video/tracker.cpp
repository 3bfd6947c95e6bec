#include "apps/video/tracker.h"

#include <algorithm>
#include <string>
#include <tuple>

#include "base/error.h"

namespace emotune {

double box_iou(const FaceBox& a, const FaceBox& b) {
  if (a.w <= 0 || a.h <= 0 || b.w <= 0 || b.h <= 0) return 0;
  const long long x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  const long long x1 = std::min((long long)a.x + a.w, (long long)b.x + b.w);
  const long long y1 = std::min((long long)a.y + a.h, (long long)b.y + b.h);
  if (x1 <= x0 || y1 <= y0) return 0;
  const double inter = (double)(x1 - x0) * (double)(y1 - y0);
  return inter / ((double)a.area() + (double)b.area() - inter);
}

FaceTracker::FaceTracker(TrackerOptions options) : options_(options) {
  if (!(options.min_iou > 0 && options.min_iou <= 1))
    throw Error("tracker: min_iou must be in (0, 1], got " + std::to_string(options.min_iou));
  if (options.max_missed < 0)
    throw Error("tracker: max_missed must be >= 0, got " + std::to_string(options.max_missed));
}

std::vector<int> FaceTracker::update(const std::vector<FaceBox>& detections) {
  struct Pair {
    double iou;
    size_t track, det;
  };
  std::vector<Pair> pairs;
  for (size_t t = 0; t < tracks_.size(); ++t)
    for (size_t d = 0; d < detections.size(); ++d) {
      double v = box_iou(tracks_[t].box, detections[d]);
      if (v >= options_.min_iou) pairs.push_back({v, t, d});
    }
  // tracks_ is sorted by id, so a lower index is a lower id.
  std::sort(pairs.begin(), pairs.end(), [](const Pair& a, const Pair& b) {
    return std::tie(b.iou, a.track, a.det) < std::tie(a.iou, b.track, b.det);
  });
  std::vector<int> ids(detections.size(), 0);
  std::vector<bool> track_used(tracks_.size(), false);
  for (const Pair& p : pairs) {
    if (track_used[p.track] || ids[p.det] != 0) continue;
    track_used[p.track] = true;
    ids[p.det] = tracks_[p.track].id;
    tracks_[p.track].box = detections[p.det];
    tracks_[p.track].missed = 0;
  }
  std::vector<FaceTrack> kept;
  for (size_t t = 0; t < tracks_.size(); ++t) {
    if (!track_used[t]) ++tracks_[t].missed;
    if (tracks_[t].missed <= options_.max_missed) kept.push_back(tracks_[t]);
  }
  for (size_t d = 0; d < detections.size(); ++d)
    if (ids[d] == 0) {
      ids[d] = next_id_++;
      kept.push_back({ids[d], detections[d], 0});
    }
  tracks_ = std::move(kept);
  return ids;
}

void FaceTracker::move(int id, const FaceBox& box) {
  for (FaceTrack& t : tracks_)
    if (t.id == id) t.box = box;
}

void FaceTracker::drop(int id) {
  std::erase_if(tracks_, [id](const FaceTrack& t) { return t.id == id; });
}

}  // namespace emotune
