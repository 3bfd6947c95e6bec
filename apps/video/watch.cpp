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

WatchResult run_watch(VideoSource& source, const EmotionPipeline& pipeline,
                      const WatchOptions& options, const std::atomic<bool>* stop) {
  if (options.detect_every < 1)
    throw Error("--detect-every must be >= 1, got " + std::to_string(options.detect_every));
  validate_smoothing_options(options.smoothing);
  WatchResult result;
  result.info = source.info();
  result.classes = pipeline.model().info.classes;
  const VideoInfo& info = result.info;
  const size_t ncls = result.classes.size();

  // Outputs first: a bad path fails before any work.
  std::unique_ptr<TimelineWriter> timeline;
  if (!options.timeline.empty())
    timeline = std::make_unique<TimelineWriter>(options.timeline, info.name, info.fps, result.classes);
  std::unique_ptr<VideoSink> sink;
  if (!options.out.empty()) sink = std::make_unique<VideoSink>(options.out, info.width, info.height, info.fps);
  std::unique_ptr<PreviewWindow> window;
  if (options.show) window = std::make_unique<PreviewWindow>("emotune watch: " + info.name);

  FaceTracker tracker(options.tracker);
  std::map<int, MoodSmoother> smoothers;
  std::map<int, double> last_seen;  // time (s) a track was last classified
  GrayImage gray{info.width, info.height, std::vector<uint8_t>((size_t)info.width * info.height)};
  cv::Mat prev_gray;
  cv::Mat bgr;
  const auto start = Clock::now();
  StageTimes stage;
  for (long long f = 0;; ++f) {
    if (options.max_frames >= 0 && f >= options.max_frames) break;
    if (stop && stop->load()) {
      result.stopped_by_user = true;
      break;
    }
    auto t = Clock::now();
    bool ok = source.read(bgr);
    result.times.decode += ms_since(t);
    if (!ok) {
      if (source.broke()) {
        result.broke = true;
        result.stop_reason = info.name + ": the stream broke at frame " + std::to_string(f) +
                             (info.frame_count > 0 ? " of " + std::to_string(info.frame_count) : "") +
                             "; everything up to frame " + std::to_string(f - 1) + " was written";
      }
      break;
    }
    const double time_s = info.camera ? std::chrono::duration<double>(Clock::now() - start).count()
                                      : (double)f / info.fps;

    t = Clock::now();
    cv::Mat cur_gray(info.height, info.width, CV_8UC1, gray.pixels.data());
    cv::cvtColor(bgr, cur_gray, cv::COLOR_BGR2GRAY);  // BT.601 weights, as base/image
    result.times.convert += ms_since(t);

    if (f % options.detect_every == 0) {
      t = Clock::now();
      std::vector<FaceResult> found = pipeline.detect(gray);
      std::vector<FaceBox> boxes;
      for (const auto& r : found) boxes.push_back(r.box);
      tracker.update(boxes);
      ++result.detections;
      result.times.detect += ms_since(t);
    }
    {
      // The motion step: every track between detections; on a detection frame the tracks the
      // detector missed (a missed track is kept only while its face is still there).
      t = Clock::now();
      std::vector<FaceTrack> tracks = tracker.tracks();
      const bool detected = f % options.detect_every == 0;
      for (const FaceTrack& tr : tracks) {
        if (detected && tr.missed == 0) continue;
        if (prev_gray.empty()) continue;
        MotionStep m = track_face_motion(prev_gray, cur_gray, tr.box);
        if (m.found)
          tracker.move(tr.id, m.box);
        else
          tracker.drop(tr.id);
      }
      result.times.track += ms_since(t);
    }
    cur_gray.copyTo(prev_gray);

    // Ended tracks free their smoother.
    for (auto it = smoothers.begin(); it != smoothers.end();) {
      bool alive = false;
      for (const FaceTrack& tr : tracker.tracks()) alive |= tr.id == it->first;
      if (!alive) last_seen.erase(it->first);
      it = alive ? std::next(it) : smoothers.erase(it);
    }

    std::vector<FaceBox> boxes;
    for (const FaceTrack& tr : tracker.tracks()) boxes.push_back(tr.box);
    t = Clock::now();
    std::vector<FaceResult> faces = pipeline.faces_at(gray, boxes);  // crops, rotation if aligning
    pipeline.classify(gray, faces, &stage);  // one batch for the frame
    result.times.network += ms_since(t);
    result.faces_classified += (long long)faces.size();

    t = Clock::now();
    std::vector<FaceAnnotation> notes;
    const auto& tracks = tracker.tracks();
    for (size_t i = 0; i < tracks.size(); ++i) {
      const int id = tracks[i].id;
      auto it = smoothers.find(id);
      if (it == smoothers.end()) it = smoothers.emplace(id, MoodSmoother(ncls, options.smoothing)).first;
      const double dt = last_seen.count(id) ? time_s - last_seen[id] : 0.0;
      last_seen[id] = time_s;
      it->second.update(faces[i].probabilities, dt);
      TimelineRow row{f, time_s, id, tracks[i].box, faces[i].probabilities, it->second.smoothed(),
                      it->second.label()};
      if (timeline) timeline->add(row);
      const double top = row.smoothed.empty() ? 0.0 : *std::max_element(row.smoothed.begin(), row.smoothed.end());
      notes.push_back({id, tracks[i].box, row.smoothed, row.label, top < pipeline.unsure_below()});
      result.rows.push_back(std::move(row));
    }
    if (timeline) timeline->end_frame();
    result.times.smooth += ms_since(t);

    if (options.explain && (sink || window)) {
      // Each face's map for the label it is shown with (the smoothed one), under the annotations.
      t = Clock::now();
      for (size_t i = 0; i < faces.size(); ++i) {
        std::vector<FaceResult> one{faces[i]};
        pipeline.explain(gray, one, (int)notes[i].label);
        draw_explanation(bgr.data, bgr.cols, bgr.rows, bgr.step, one[0]);
      }
      result.times.explain += ms_since(t);
    }
    if (sink || window) {
      t = Clock::now();
      draw_annotations(bgr, notes, result.classes);
      result.times.draw += ms_since(t);
      t = Clock::now();
      if (sink) sink->write(bgr);
      result.times.encode += ms_since(t);
      if (window && !window->show(bgr)) {
        result.stopped_by_user = true;
        ++result.frames;
        break;
      }
    }
    ++result.frames;
  }
  result.times.total = ms_since(start);
  if (sink) sink->release();
  if (timeline) timeline->close();
  return result;
}

}  // namespace emotune
