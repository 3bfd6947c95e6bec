// Fuzz target: the parts of `emotune watch` that are ours and see data derived from the video
// (apps/video: tracker, smoothing, timeline summaries). Decoding is OpenCV/FFmpeg's; what comes
// out of it reaches our code as face boxes (any position and size the detector or the motion
// step produce, including boxes outside the frame) and probability vectors, at any frame time.
// The input bytes are read as a script of such events; invariants are checked after each.
#include <cmath>
#include <cstring>
#include <map>
#include <set>

#include "apps/video/smoothing.h"
#include "apps/video/timeline.h"
#include "apps/video/tracker.h"
#include "fuzz/fuzz.h"

namespace {

struct Reader {
  const uint8_t* p;
  size_t n;
  uint8_t byte() {
    if (!n) return 0;
    --n;
    return *p++;
  }
  int16_t i16() { return (int16_t)(byte() | byte() << 8); }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace emotune;
  Reader in{data, size};
  return fuzz::run_accepting_errors([&] {
    TrackerOptions to{(in.byte() % 100 + 1) / 100.0, in.byte() % 5};
    SmoothingOptions so{(in.byte() % 50) / 10.0, (in.byte() % 100) / 100.0};
    FaceTracker tracker(to);
    std::vector<TimelineRow> rows;
    std::map<int, MoodSmoother> smoothers;
    int last_next = tracker.next_id();
    for (long long frame = 0; in.n > 0 && frame < 2000; ++frame) {
      const uint8_t op = in.byte();
      if (op % 4 == 0) {  // detection round
        std::vector<FaceBox> boxes(in.byte() % 8);
        for (auto& b : boxes) b = {in.i16(), in.i16(), in.i16(), in.i16()};
        std::vector<int> ids = tracker.update(boxes);
        if (ids.size() != boxes.size()) std::abort();
        std::set<int> seen;
        for (int id : ids)
          if (id <= 0 || id >= tracker.next_id() || !seen.insert(id).second) std::abort();
      } else if (op % 4 == 1 && !tracker.tracks().empty()) {  // motion step
        const int id = tracker.tracks()[in.byte() % tracker.tracks().size()].id;
        if (in.byte() % 2)
          tracker.move(id, {in.i16(), in.i16(), in.i16(), in.i16()});
        else
          tracker.drop(id);
      }
      if (tracker.next_id() < last_next) std::abort();  // ids are never reused
      last_next = tracker.next_id();
      for (size_t i = 1; i < tracker.tracks().size(); ++i)
        if (tracker.tracks()[i - 1].id >= tracker.tracks()[i].id) std::abort();
      // Classify every tracked face with probabilities from the input (a softmax output: >= 0).
      const double dt = (in.byte() % 100) / 1000.0;
      for (const FaceTrack& t : tracker.tracks()) {
        std::vector<float> p(7);
        float sum = 0;
        for (auto& v : p) sum += v = in.byte();
        if (sum == 0) p[6] = sum = 1;
        for (auto& v : p) v /= sum;
        auto it = smoothers.try_emplace(t.id, 7, so).first;
        const auto& s = it->second.update(p, dt);
        double total = 0;
        for (double v : s) {
          if (!(v >= 0 && v <= 1 + 1e-6)) std::abort();
          total += v;
        }
        if (std::fabs(total - 1) > 1e-4) std::abort();  // convex mixes of distributions
        if (it->second.label() >= 7) std::abort();
        rows.push_back({frame, frame / 30.0, t.id, t.box, p, s, it->second.label()});
      }
    }
    auto summaries = summarize_tracks(rows, 7, 30.0);
    size_t frames = 0;
    for (const auto& s : summaries) frames += (size_t)s.frames;
    if (frames != rows.size()) std::abort();
    auto segments = mood_segments(rows, 7, 30.0, (in.byte() % 40) / 10.0);
    if (rows.empty() != segments.empty()) std::abort();
    for (size_t i = 1; i < segments.size(); ++i)
      if (segments[i].start_s < segments[i - 1].start_s) std::abort();
  });
}
