#include "apps/video/timeline.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <map>

#include <nlohmann/json.hpp>

#include "base/error.h"

namespace emotune {

TimelineWriter::TimelineWriter(const std::string& path, const std::string& video, double fps,
                               const std::vector<std::string>& classes)
    : path_(path), video_(video), fps_(fps), classes_(classes) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  if (ext == ".json")
    json_ = true;
  else if (ext != ".csv")
    throw Error(path + ": --timeline must end in .csv or .json, got '" + ext + "'");
  file_ = std::fopen(path.c_str(), "wb");
  if (!file_) throw Error(path + ": cannot write: " + std::strerror(errno));
  if (!json_) {
    std::string h = "frame,time_s,track,x,y,w,h,label";
    for (const auto& c : classes) h += ",raw_" + c;
    for (const auto& c : classes) h += ",smooth_" + c;
    std::fprintf(file_, "%s\n", h.c_str());
  }
}

TimelineWriter::~TimelineWriter() {
  try {
    close();
  } catch (...) {
  }
}

void TimelineWriter::add(const TimelineRow& r) {
  if (!file_) return;
  if (json_) {
    rows_.push_back(r);
    return;
  }
  std::fprintf(file_, "%lld,%.4f,%d,%d,%d,%d,%d,%s", r.frame, r.time_s, r.track, r.box.x, r.box.y,
               r.box.w, r.box.h, classes_.at(r.label).c_str());
  for (float p : r.raw) std::fprintf(file_, ",%.5f", p);
  for (double p : r.smoothed) std::fprintf(file_, ",%.5f", p);
  std::fputc('\n', file_);
}

void TimelineWriter::end_frame() {
  if (file_ && !json_) std::fflush(file_);
}

void TimelineWriter::close() {
  if (!file_) return;
  if (json_) {
    nlohmann::json rows = nlohmann::json::array();
    for (const auto& r : rows_)
      rows.push_back({{"frame", r.frame}, {"time_s", r.time_s}, {"track", r.track},
                      {"box", {r.box.x, r.box.y, r.box.w, r.box.h}}, {"label", classes_.at(r.label)},
                      {"raw", r.raw}, {"smoothed", r.smoothed}});
    nlohmann::json doc = {{"video", video_}, {"fps", fps_}, {"classes", classes_}, {"rows", rows}};
    std::string text = doc.dump(1) + "\n";
    std::fwrite(text.data(), 1, text.size(), file_);
  }
  bool bad = std::ferror(file_) != 0;
  bad |= std::fclose(file_) != 0;
  file_ = nullptr;
  if (bad) throw Error(path_ + ": write error (disk full?)");
}

std::vector<TrackSummary> summarize_tracks(const std::vector<TimelineRow>& rows, size_t classes,
                                           double fps) {
  std::map<int, TrackSummary> by_id;
  for (const auto& r : rows) {
    TrackSummary& s = by_id[r.track];
    if (s.frames == 0) {
      s.id = r.track;
      s.first_s = r.time_s;
      s.shares.assign(classes, 0);
      s.mean.assign(classes, 0);
    }
    ++s.frames;
    s.last_s = r.time_s;
    if (r.label < classes) s.shares[r.label] += 1;
    for (size_t c = 0; c < classes && c < r.raw.size(); ++c) s.mean[c] += r.raw[c];
  }
  std::vector<TrackSummary> out;
  for (auto& [id, s] : by_id) {
    for (auto& v : s.shares) v /= (double)s.frames;
    for (auto& v : s.mean) v /= (double)s.frames;
    s.seconds = (double)s.frames / fps;
    s.dominant = (size_t)(std::max_element(s.shares.begin(), s.shares.end()) - s.shares.begin());
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<MoodSegment> mood_segments(const std::vector<TimelineRow>& rows, size_t classes,
                                       double fps, double min_segment_s) {
  // Per frame: mean smoothed (for the label) and mean raw (for the target) over its faces.
  struct Frame {
    double time_s;
    std::vector<double> smooth, raw;
    int faces = 0;
  };
  std::map<long long, Frame> frames;
  for (const auto& r : rows) {
    Frame& f = frames[r.frame];
    if (f.faces == 0) f = {r.time_s, std::vector<double>(classes, 0), std::vector<double>(classes, 0), 0};
    ++f.faces;
    for (size_t c = 0; c < classes && c < r.raw.size() && c < r.smoothed.size(); ++c) {
      f.smooth[c] += r.smoothed[c];
      f.raw[c] += r.raw[c];
    }
  }
  struct Run {
    size_t label;
    double start_s, end_s;
    long long frames;
    std::vector<double> raw_sum;
  };
  std::vector<Run> runs;
  for (auto& [idx, f] : frames) {
    size_t label = (size_t)(std::max_element(f.smooth.begin(), f.smooth.end()) - f.smooth.begin());
    for (auto& v : f.raw) v /= f.faces;
    if (runs.empty() || runs.back().label != label)
      runs.push_back({label, f.time_s, f.time_s, 0, std::vector<double>(classes, 0)});
    Run& run = runs.back();
    run.end_s = f.time_s + 1.0 / fps;
    ++run.frames;
    for (size_t c = 0; c < classes; ++c) run.raw_sum[c] += f.raw[c];
  }
  auto absorb = [&](Run& into, const Run& from) {
    into.start_s = std::min(into.start_s, from.start_s);
    into.end_s = std::max(into.end_s, from.end_s);
    into.frames += from.frames;
    for (size_t c = 0; c < classes; ++c) into.raw_sum[c] += from.raw_sum[c];
  };
  // Merge short runs into their predecessor (the first into its successor), then join equals.
  std::vector<Run> merged;
  for (auto& run : runs) {
    if (!merged.empty() && run.end_s - run.start_s < min_segment_s)
      absorb(merged.back(), run);
    else if (!merged.empty() && merged.back().label == run.label)
      absorb(merged.back(), run);
    else
      merged.push_back(run);
  }
  if (merged.size() > 1 && merged[0].end_s - merged[0].start_s < min_segment_s) {
    absorb(merged[1], merged[0]);
    merged.erase(merged.begin());
  }
  std::vector<MoodSegment> out;
  for (const auto& run : merged) {
    MoodSegment s;
    s.start_s = run.start_s;
    s.end_s = run.end_s;
    s.frames = run.frames;
    for (double v : run.raw_sum) s.probabilities.push_back((float)(v / (double)run.frames));
    s.label = (size_t)(std::max_element(s.probabilities.begin(), s.probabilities.end()) -
                       s.probabilities.begin());
    if (!out.empty() && out.back().label == s.label) {  // merging changed the label of a neighbour
      MoodSegment& b = out.back();
      for (size_t c = 0; c < classes; ++c)
        b.probabilities[c] = (float)((b.probabilities[c] * b.frames + s.probabilities[c] * s.frames) /
                                     (double)(b.frames + s.frames));
      b.frames += s.frames;
      b.end_s = s.end_s;
      continue;
    }
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace emotune
