// What `emotune watch` records: one row per tracked face per frame, written as it goes (CSV is
// flushed every frame, so a run that stops early keeps every row up to that frame), and what is
// read back from the rows at the end: per-track summaries and the clip's mood segments. Pure C++
// (no OpenCV).
//
// CSV columns: frame,time_s,track,x,y,w,h,label,raw_<class>...,smooth_<class>...
// JSON: {"video": ..., "fps": ..., "classes": [...], "rows": [{"frame", "time_s", "track",
//        "box": [x, y, w, h], "label", "raw": [...], "smoothed": [...]}]}
#pragma once
#include <cstdio>
#include <string>
#include <vector>

#include "base/image.h"

namespace emotune {

struct TimelineRow {
  long long frame = 0;  // 0-based frame index in the video
  double time_s = 0;    // frame / fps for files; seconds since the start for cameras
  int track = 0;
  FaceBox box;
  std::vector<float> raw;        // the network's probabilities on this frame, model class order
  std::vector<double> smoothed;  // after MoodSmoother
  size_t label = 0;              // the class shown (hysteresis)
};

class TimelineWriter {
 public:
  // Format by extension: .csv or .json. Throws emotune::Error naming the path for another
  // extension or a file that cannot be created.
  TimelineWriter(const std::string& path, const std::string& video, double fps,
                 const std::vector<std::string>& classes);
  ~TimelineWriter();
  void add(const TimelineRow& row);
  void end_frame();  // flush (CSV)
  void close();      // writes the JSON document; closes the file. Throws on a write error.
  const std::string& path() const { return path_; }

 private:
  std::string path_, video_;
  double fps_;
  std::vector<std::string> classes_;
  bool json_ = false;
  FILE* file_ = nullptr;
  std::vector<TimelineRow> rows_;  // JSON only
};

struct TrackSummary {
  int id = 0;
  long long frames = 0;
  double seconds = 0;  // frames / fps
  double first_s = 0, last_s = 0;
  std::vector<double> shares;  // fraction of its frames each class was the shown label
  std::vector<double> mean;    // mean raw probabilities
  size_t dominant = 0;         // the class shown longest (lowest index on a tie)
};

// One summary per track id, sorted by id.
std::vector<TrackSummary> summarize_tracks(const std::vector<TimelineRow>& rows, size_t classes,
                                           double fps);

struct MoodSegment {
  double start_s = 0, end_s = 0;
  long long frames = 0;            // frames with at least one face
  std::vector<float> probabilities;  // mean over those frames of the mean raw probabilities of the faces
  size_t label = 0;                // argmax of probabilities
};

// The clip's mood over time, for the recommendation: each frame with faces gets the label of the
// mean smoothed probabilities of its faces; runs of one label shorter than min_segment_s are
// merged into the run before (the first into the one after), and neighbours with the same label
// joined. One segment when the mood does not change. Empty when no frame had a face.
std::vector<MoodSegment> mood_segments(const std::vector<TimelineRow>& rows, size_t classes,
                                       double fps, double min_segment_s);

}  // namespace emotune
