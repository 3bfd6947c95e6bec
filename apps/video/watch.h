// The video loop of `emotune watch`: decode -> (every k-th frame) detect + associate, otherwise
// the motion step -> classify the tracked faces of the frame in one batch -> smooth per track ->
// draw -> encode, with the timeline written as it goes. The command (apps/cmd_watch.cpp) parses
// flags, prints the summary and the recommendation, and maps the result to an exit code.
#pragma once
#include <atomic>
#include <string>
#include <vector>

#include "apps/pipeline/pipeline.h"
#include "apps/video/smoothing.h"
#include "apps/video/timeline.h"
#include "apps/video/tracker.h"
#include "apps/video/video_io.h"

namespace emotune {

struct WatchOptions {
  // Run the Haar detector on every k-th frame (k = 1: every frame); the motion step moves the
  // boxes in between. 5: measured to keep a 640x480 one-face clip above 30 frames/s on the 2-core
  // CPU (docs/benchmarks.md), and a new face is found within 5 frames (1/6 s at 30 fps).
  int detect_every = 5;
  SmoothingOptions smoothing;
  TrackerOptions tracker;
  std::string out;       // annotated video ("" = none)
  std::string timeline;  // .csv or .json ("" = none)
  bool show = false;     // live window
  bool explain = false;  // Grad-CAM of each face's label drawn over its crop in --out / --show
  long long max_frames = -1;  // stop after this many frames (-1: the whole stream)
};

// Milliseconds summed over the frames of a run, per stage.
struct WatchTimes {
  double decode = 0, convert = 0, detect = 0, track = 0, network = 0, smooth = 0, draw = 0,
         encode = 0, explain = 0;
  double total = 0;  // wall time of the loop
  std::string per_frame(long long frames) const;  // "decode 2.1 ms, detect 9.8 ms, ..."
};

struct WatchResult {
  VideoInfo info;
  std::vector<std::string> classes;
  long long frames = 0;         // frames processed (and written to --out)
  long long detections = 0;     // detection rounds run
  long long faces_classified = 0;
  bool broke = false;           // the stream ended before its end (see stop_reason)
  bool stopped_by_user = false; // q / Esc in the window, or the stop flag
  std::string stop_reason;      // "" when the stream ended normally
  std::vector<TimelineRow> rows;
  WatchTimes times;
};

// Runs the loop over `source` until it ends, breaks, max_frames is reached or *stop becomes true
// (Ctrl-C). Outputs are opened before the first frame is processed, so a bad --out or --timeline
// fails at once; they are finalised whatever happens after, so everything up to the last frame
// stays readable. Throws emotune::Error for bad options or an output that cannot be created.
WatchResult run_watch(VideoSource& source, const EmotionPipeline& pipeline,
                      const WatchOptions& options, const std::atomic<bool>* stop = nullptr);

}  // namespace emotune
