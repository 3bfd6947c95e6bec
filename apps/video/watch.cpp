#include "apps/video/watch.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <opencv2/imgproc.hpp>

#include "apps/video/draw.h"
#include "apps/video/motion.h"
#include "apps/video/window.h"
#include "base/error.h"

namespace emotune {

namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t) {
  return std::chrono::duration<double, std::milli>(Clock::now() - t).count();
}

}  // namespace

std::string WatchTimes::per_frame(long long frames) const {
  const double n = frames > 0 ? (double)frames : 1;
  char b[320], ex[48] = "";
  if (explain > 0) std::snprintf(ex, sizeof ex, ", explain %.2f ms", explain / n);
  std::snprintf(b, sizeof b,
                "decode %.2f ms, convert %.2f ms, detect %.2f ms, track %.2f ms, network %.2f ms, "
                "smooth %.3f ms, draw %.2f ms, encode %.2f ms%s; total %.2f ms/frame (%.1f frames/s)",
                decode / n, convert / n, detect / n, track / n, network / n, smooth / n, draw / n,
                encode / n, ex, total / n, total > 0 ? 1000.0 * frames / total : 0.0);
  return b;
}

namespace {

// One run of the loop: the outputs, the tracks and their smoothers, and the frame buffers carried
// from frame to frame. Each stage is a method, timed into result.times by the loop.
class WatchLoop {
 public:
  // The outputs open before the tracker checks its options, as they always have.
  WatchLoop(VideoSource& source, const EmotionPipeline& pipeline, const WatchOptions& options, WatchResult& result)
      : source_(source), pipeline_(pipeline), options_(options), r_(result), info_(result.info),
        out_(open_outputs(options, result)), tracker_(options.tracker),
        gray_{info_.width, info_.height, std::vector<uint8_t>((size_t)info_.width * info_.height)} {}

  void run(const std::atomic<bool>* stop);

 private:
  struct Outputs {
    std::unique_ptr<TimelineWriter> timeline;
    std::unique_ptr<VideoSink> sink;
    std::unique_ptr<PreviewWindow> window;
  };
  static Outputs open_outputs(const WatchOptions& options, const WatchResult& result);
  bool read_frame(long long f);
  void detect();
  void move_tracks(long long f, const cv::Mat& cur_gray);
  void forget_ended_tracks();
  std::vector<FaceResult> classify();
  std::vector<FaceAnnotation> smooth(long long f, double time_s, const std::vector<FaceResult>& faces);
  bool show(const std::vector<FaceResult>& faces, const std::vector<FaceAnnotation>& notes);

  VideoSource& source_;
  const EmotionPipeline& pipeline_;
  const WatchOptions& options_;
  WatchResult& r_;
  const VideoInfo& info_;
  Outputs out_;
  FaceTracker tracker_;
  std::map<int, MoodSmoother> smoothers_;
  std::map<int, double> last_seen_;  // time (s) a track was last classified
  GrayImage gray_;
  cv::Mat prev_gray_, bgr_;
  StageTimes stage_;  // the pipeline's own split of classify, not reported by watch
};

// Outputs first: a bad path fails before any work.
WatchLoop::Outputs WatchLoop::open_outputs(const WatchOptions& options, const WatchResult& result) {
  const VideoInfo& info = result.info;
  Outputs out;
  if (!options.timeline.empty())
    out.timeline = std::make_unique<TimelineWriter>(options.timeline, info.name, info.fps, result.classes);
  if (!options.out.empty()) out.sink = std::make_unique<VideoSink>(options.out, info.width, info.height, info.fps);
  if (options.show) out.window = std::make_unique<PreviewWindow>("emotune watch: " + info.name);
  return out;
}

void WatchLoop::run(const std::atomic<bool>* stop) {
  const auto start = Clock::now();
  for (long long f = 0;; ++f) {
    if (options_.max_frames >= 0 && f >= options_.max_frames) break;
    if (stop && stop->load()) {
      r_.stopped_by_user = true;
      break;
    }
    if (!read_frame(f)) break;
    const double time_s = info_.camera ? std::chrono::duration<double>(Clock::now() - start).count()
                                       : (double)f / info_.fps;

    auto t = Clock::now();
    cv::Mat cur_gray(info_.height, info_.width, CV_8UC1, gray_.pixels.data());
    cv::cvtColor(bgr_, cur_gray, cv::COLOR_BGR2GRAY);  // BT.601 weights, as base/image
    r_.times.convert += ms_since(t);

    if (f % options_.detect_every == 0) detect();
    move_tracks(f, cur_gray);
    cur_gray.copyTo(prev_gray_);
    forget_ended_tracks();

    const std::vector<FaceResult> faces = classify();
    const std::vector<FaceAnnotation> notes = smooth(f, time_s, faces);
    if ((out_.sink || out_.window) && !show(faces, notes)) {
      r_.stopped_by_user = true;
      ++r_.frames;
      break;
    }
    ++r_.frames;
  }
  r_.times.total = ms_since(start);
  if (out_.sink) out_.sink->release();
  if (out_.timeline) out_.timeline->close();
}

// False at the end of the stream; a broken stream says where it broke.
bool WatchLoop::read_frame(long long f) {
  const auto t = Clock::now();
  const bool ok = source_.read(bgr_);
  r_.times.decode += ms_since(t);
  if (!ok && source_.broke()) {
    r_.broke = true;
    r_.stop_reason = info_.name + ": the stream broke at frame " + std::to_string(f) +
                     (info_.frame_count > 0 ? " of " + std::to_string(info_.frame_count) : "") +
                     "; everything up to frame " + std::to_string(f - 1) + " was written";
  }
  return ok;
}

void WatchLoop::detect() {
  const auto t = Clock::now();
  std::vector<FaceResult> found = pipeline_.detect(gray_);
  std::vector<FaceBox> boxes;
  for (const auto& face : found) boxes.push_back(face.box);
  tracker_.update(boxes);
  ++r_.detections;
  r_.times.detect += ms_since(t);
}

// The motion step: every track between detections; on a detection frame the tracks the detector
// missed (a missed track is kept only while its face is still there).
void WatchLoop::move_tracks(long long f, const cv::Mat& cur_gray) {
  const auto t = Clock::now();
  std::vector<FaceTrack> tracks = tracker_.tracks();
  const bool detected = f % options_.detect_every == 0;
  for (const FaceTrack& tr : tracks) {
    if (detected && tr.missed == 0) continue;
    if (prev_gray_.empty()) continue;
    MotionStep m = track_face_motion(prev_gray_, cur_gray, tr.box);
    if (m.found)
      tracker_.move(tr.id, m.box);
    else
      tracker_.drop(tr.id);
  }
  r_.times.track += ms_since(t);
}

// Ended tracks free their smoother.
void WatchLoop::forget_ended_tracks() {
  for (auto it = smoothers_.begin(); it != smoothers_.end();) {
    bool alive = false;
    for (const FaceTrack& tr : tracker_.tracks()) alive |= tr.id == it->first;
    if (!alive) last_seen_.erase(it->first);
    it = alive ? std::next(it) : smoothers_.erase(it);
  }
}

// The tracked faces of the frame, classified in one batch.
std::vector<FaceResult> WatchLoop::classify() {
  std::vector<FaceBox> boxes;
  for (const FaceTrack& tr : tracker_.tracks()) boxes.push_back(tr.box);
  const auto t = Clock::now();
  std::vector<FaceResult> faces = pipeline_.faces_at(gray_, boxes);  // crops, rotation if aligning
  pipeline_.classify(gray_, faces, &stage_);
  r_.times.network += ms_since(t);
  r_.faces_classified += (long long)faces.size();
  return faces;
}

// Each track's smoother takes its face's probabilities; the timeline gets a row per face.
std::vector<FaceAnnotation> WatchLoop::smooth(long long f, double time_s, const std::vector<FaceResult>& faces) {
  const auto t = Clock::now();
  std::vector<FaceAnnotation> notes;
  const auto& tracks = tracker_.tracks();
  for (size_t i = 0; i < tracks.size(); ++i) {
    const int id = tracks[i].id;
    auto it = smoothers_.find(id);
    if (it == smoothers_.end()) it = smoothers_.emplace(id, MoodSmoother(r_.classes.size(), options_.smoothing)).first;
    const double dt = last_seen_.count(id) ? time_s - last_seen_[id] : 0.0;
    last_seen_[id] = time_s;
    it->second.update(faces[i].probabilities, dt);
    TimelineRow row{f, time_s, id, tracks[i].box, faces[i].probabilities, it->second.smoothed(), it->second.label()};
    if (out_.timeline) out_.timeline->add(row);
    // The smoothed probabilities decide, by the pipeline's one rule (is_unsure).
    const bool unsure = is_unsure(std::vector<float>(row.smoothed.begin(), row.smoothed.end()), pipeline_.unsure_below());
    notes.push_back({id, tracks[i].box, row.smoothed, row.label, unsure});
    r_.rows.push_back(std::move(row));
  }
  if (out_.timeline) out_.timeline->end_frame();
  r_.times.smooth += ms_since(t);
  return notes;
}

// Explanations, annotations, then the frame to --out and the window. False when the window was
// closed (q / Esc).
bool WatchLoop::show(const std::vector<FaceResult>& faces, const std::vector<FaceAnnotation>& notes) {
  auto t = Clock::now();
  if (options_.explain) {
    // Each face's map for the label it is shown with (the smoothed one), under the annotations.
    for (size_t i = 0; i < faces.size(); ++i) {
      std::vector<FaceResult> one{faces[i]};
      pipeline_.explain(gray_, one, (int)notes[i].label, nullptr, /*face_pictures=*/false);
      draw_explanation(bgr_.data, bgr_.cols, bgr_.rows, bgr_.step, one[0]);
    }
    r_.times.explain += ms_since(t);
  }
  t = Clock::now();
  draw_annotations(bgr_, notes, r_.classes);
  r_.times.draw += ms_since(t);
  t = Clock::now();
  if (out_.sink) out_.sink->write(bgr_);
  r_.times.encode += ms_since(t);
  return !out_.window || out_.window->show(bgr_);
}

}  // namespace

WatchResult run_watch(VideoSource& source, const EmotionPipeline& pipeline,
                      const WatchOptions& options, const std::atomic<bool>* stop) {
  if (options.detect_every < 1)
    throw Error("--detect-every must be >= 1, got " + std::to_string(options.detect_every));
  validate_smoothing_options(options.smoothing);
  WatchResult result;
  result.info = source.info();
  result.classes = pipeline.model().info.classes;
  WatchLoop(source, pipeline, options, result).run(stop);
  return result;
}

}  // namespace emotune
