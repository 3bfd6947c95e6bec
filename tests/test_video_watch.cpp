// `emotune watch` end to end, as a user runs it (the built executable in a child process), on
// videos this test makes from the real photos in ../shared/data/photos (skipped, visibly, with
// exit 77 when they are absent): a face moving while a second person enters and leaves, and a
// cut from one person to another. Checks track counts, the frames of the annotated video, the
// timeline rows, the summary, and that hostile inputs are refused with the documented exit codes.
#include <algorithm>
#include <doctest/doctest.h>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

#include "apps/vision/face.h"
#include "base/image.h"
#include "tests/testing.h"

using namespace emotune;
namespace fs = std::filesystem;
using emotune::testing::contains;

namespace {

constexpr int kW = 320, kH = 240, kFrames = 60;
constexpr double kFps = 15;

bool have_photos() {
  return fs::exists(testing::shared_dir() + "/data/photos/fr_obama.jpg") &&
         fs::exists(testing::shared_dir() + "/data/photos/fr_biden.jpg");
}

// The photo's face with context around it (crop side 2x the face side), as a 120x120 patch.
cv::Mat face_patch(const std::string& photo) {
  GrayImage img = load_gray_image(testing::shared_dir() + "/data/photos/" + photo);
  FaceDetector detector;
  auto faces = detector.detect(img);
  REQUIRE(faces.size() == 1);
  FaceBox crop = crop_box_with_margin(faces[0], img.width, img.height, 0.5);
  GrayImage patch = face_image(img, crop, 120);
  cv::Mat g(120, 120, CV_8UC1, patch.pixels.data()), bgr;
  cv::cvtColor(g, bgr, cv::COLOR_GRAY2BGR);
  return bgr.clone();
}

struct Placement {
  const cv::Mat* patch;
  int first, last;                   // frames [first, last)
  int x0, y0, dx, dy;                // position at `first` and pixels per frame
};

std::string make_video(const std::string& name, const std::vector<Placement>& people, int frames = kFrames) {
  std::string path = testing::temp_dir("watch_videos") + "/" + name;
  cv::VideoWriter w(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), kFps, {kW, kH});
  REQUIRE(w.isOpened());
  for (int f = 0; f < frames; ++f) {
    cv::Mat frame(kH, kW, CV_8UC3, cv::Scalar(120, 130, 125));
    for (const auto& p : people) {
      if (f < p.first || f >= p.last) continue;
      int x = p.x0 + p.dx * (f - p.first), y = p.y0 + p.dy * (f - p.first);
      p.patch->copyTo(frame(cv::Rect(x, y, p.patch->cols, p.patch->rows)));
    }
    w.write(frame);
  }
  w.release();
  return path;
}

struct Result {
  int code = -1;
  std::string log;
};

Result watch(std::vector<std::string> args) {
  std::string log = testing::temp_dir("watch_log") + "/log.txt";
  args.insert(args.begin(), {testing::emotune_binary(), "watch"});
  args.insert(args.end(), {"--model", testing::source_dir() + "/models/paper.safetensors"});
  int status = testing::run_command(args, {log, nullptr});
  Result r;
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.log = testing::read_text(log);
  return r;
}

long long count_frames(const std::string& video) {
  cv::VideoCapture cap(video, cv::CAP_FFMPEG);
  if (!cap.isOpened()) return -1;
  long long n = 0;
  cv::Mat m;
  while (cap.read(m)) ++n;
  return n;
}

// track id -> (rows, first frame, last frame) from the CSV timeline; *rows_total all rows.
struct TrackRows {
  int rows = 0;
  long long first = -1, last = -1;
};
std::map<int, TrackRows> read_csv_tracks(const std::string& path, int* rows_total) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  CHECK(line.rfind("frame,time_s,track,x,y,w,h,label,raw_angry", 0) == 0);
  std::map<int, TrackRows> tracks;
  *rows_total = 0;
  while (std::getline(in, line)) {
    long long frame;
    double t;
    int id;
    REQUIRE(std::sscanf(line.c_str(), "%lld,%lf,%d,", &frame, &t, &id) == 3);
    CHECK(std::count(line.begin(), line.end(), ',') == 7 + 14);
    TrackRows& r = tracks[id];
    if (r.rows++ == 0) r.first = frame;
    r.last = frame;
    ++*rows_total;
  }
  return tracks;
}

}  // namespace

TEST_CASE("watch: a moving face, a second person entering and leaving") {
  if (!have_photos()) {
    MESSAGE("SKIPPED (no ../shared/data/photos): watch end to end");
    std::exit(77);
  }
  cv::Mat a = face_patch("fr_obama.jpg"), b = face_patch("fr_biden.jpg");
  // A walks right 1 px per frame for the whole clip; B is in view for frames 15..44, drifting down.
  std::string video = make_video("walk.avi", {{&a, 0, kFrames, 0, 60, 1, 0}, {&b, 15, 45, 190, 30, 0, 1}});
  std::string dir = testing::temp_dir("watch_walk");
  Result r = watch({video, "--out", dir + "/annotated.avi", "--timeline", dir + "/timeline.csv"});
  INFO(r.log);
  REQUIRE(r.code == 0);
  CHECK(contains(r.log, "tracks: 2"));
  CHECK(contains(r.log, "60 frames (4.00 s)"));
  CHECK(count_frames(dir + "/annotated.avi") == kFrames);
  int rows = 0;
  auto tracks = read_csv_tracks(dir + "/timeline.csv", &rows);
  REQUIRE(tracks.size() == 2);
  // A: every frame, one id. B: found on the detection round at frame 15 (every 5th frame), lost
  // by the motion step when the patch disappears at 45; one frame of slack on either side.
  CHECK(tracks[1].rows == kFrames);
  CHECK(tracks[2].first >= 15);
  CHECK(tracks[2].first <= 16);
  CHECK(tracks[2].last >= 43);
  CHECK(tracks[2].last <= 45);
  CHECK(rows == tracks[1].rows + tracks[2].rows);
  CHECK(contains(r.log, "#1     4.00 s in view"));
}

TEST_CASE("watch: a cut from one person to another; mp4 out, JSON timeline, plot, recommend") {
  if (!have_photos()) {
    MESSAGE("SKIPPED (no ../shared/data/photos): watch end to end");
    std::exit(77);
  }
  cv::Mat a = face_patch("fr_obama.jpg"), b = face_patch("fr_biden.jpg");
  std::string video = make_video("cut.avi", {{&a, 0, 30, 40, 60, 0, 0}, {&b, 30, kFrames, 170, 40, 0, 0}});
  std::string dir = testing::temp_dir("watch_cut");
  Result r = watch({video, "--out", dir + "/annotated.mp4", "--timeline", dir + "/timeline.json",
                    "--plot", dir + "/timeline.png", "--recommend", "3", "--min-segment", "0.5"});
  INFO(r.log);
  REQUIRE(r.code == 0);
  CHECK(count_frames(dir + "/annotated.mp4") == kFrames);
  auto doc = nlohmann::json::parse(testing::read_text(dir + "/timeline.json"));
  CHECK(doc["classes"].size() == 7);
  std::map<int, std::pair<long long, long long>> span;  // id -> first, last frame
  for (const auto& row : doc["rows"]) {
    int id = row["track"];
    long long f = row["frame"];
    if (!span.count(id)) span[id] = {f, f};
    span[id].second = f;
    CHECK(row["raw"].size() == 7);
    CHECK(row["smoothed"].size() == 7);
    CHECK(row["box"].size() == 4);
  }
  REQUIRE(span.size() == 2);
  CHECK(span[1].first == 0);
  CHECK(span[1].second == 29);  // the motion step loses A at the cut
  CHECK(span[2].first >= 30);
  CHECK(span[2].first <= 35);   // found at the next detection round
  CHECK(span[2].second == kFrames - 1);
  CHECK(contains(r.log, "tracks: 2"));
  CHECK(fs::file_size(dir + "/timeline.png") > 1000);
  CHECK((contains(r.log, "mood of the clip") || contains(r.log, "mood segment")));
  CHECK(contains(r.log, " 1. "));
}

TEST_CASE("watch --explain: the heat map is drawn over the face in every frame of --out, and needs an output") {
  if (!have_photos()) {
    MESSAGE("SKIPPED (no ../shared/data/photos): watch --explain");
    std::exit(77);
  }
  cv::Mat a = face_patch("fr_obama.jpg");
  std::string video = make_video("still.avi", {{&a, 0, 20, 100, 60, 0, 0}}, 20);
  std::string dir = testing::temp_dir("watch_explain");
  Result plain = watch({video, "--out", dir + "/plain.avi"});
  Result ex = watch({video, "--out", dir + "/explained.avi", "--explain"});
  INFO(ex.log);
  REQUIRE(plain.code == 0);
  REQUIRE(ex.code == 0);
  CHECK(contains(ex.log, "explain "));  // the per-frame timing names the stage
  // The clip is grey; the annotations add a box and bars in class colours outside the face. The
  // heat map adds colour inside the face patch: count strongly coloured pixels (channel spread
  // > 60) in the patch's interior, frame by frame.
  auto coloured = [](const std::string& path) {
    cv::VideoCapture cap(path, cv::CAP_FFMPEG);
    std::vector<int> counts;
    cv::Mat m;
    while (cap.read(m)) {
      int n = 0;
      for (int y = 80; y < 160; ++y)
        for (int x = 120; x < 200; ++x) {
          const cv::Vec3b p = m.at<cv::Vec3b>(y, x);
          n += std::max({p[0], p[1], p[2]}) - std::min({p[0], p[1], p[2]}) > 60;
        }
      counts.push_back(n);
    }
    return counts;
  };
  const std::vector<int> p = coloured(dir + "/plain.avi"), e = coloured(dir + "/explained.avi");
  REQUIRE(p.size() == 20);
  REQUIRE(e.size() == 20);
  for (size_t f = 0; f < e.size(); ++f) {
    INFO("frame " << f << ": " << p[f] << " coloured pixels without, " << e[f] << " with --explain");
    CHECK(e[f] > p[f] + 100);
  }
  Result alone = watch({video, "--explain"});
  CHECK(alone.code == 1);
  CHECK(contains(alone.log, "--explain draws on the video: it needs --out FILE or --show"));
}

TEST_CASE("watch: a WebM whose container over-counts its frames ends cleanly; the same file cut short still breaks") {
  // tests/data/video/vfr_gap.webm (tests/data/video/README.md): 50 VP8 frames at 25 fps with a
  // 0.4 s pause after frame 25, so the container's duration is 2.4 s and FFmpeg estimates
  // 60 frames from duration x rate. Every frame is there: exit 0, one timeline row per frame.
  const std::string clip = testing::source_dir() + "/tests/data/video/vfr_gap.webm";
  std::string dir = testing::temp_dir("watch_vfr");
  Result r = watch({clip, "--timeline", dir + "/timeline.csv"});
  INFO(r.log);
  CHECK(r.code == 0);
  CHECK_FALSE(contains(r.log, "broke"));
  int rows = 0;
  auto tracks = read_csv_tracks(dir + "/timeline.csv", &rows);
  CHECK(rows == 50);
  // The first 17,000 of its 28,098 bytes: 25 frames decode, then the data ends 1.4 s before the
  // container's end: a broken stream, exit 3, as for the truncated AVI below.
  std::string bytes = testing::read_text(clip);
  REQUIRE(bytes.size() > 17000);
  std::string cut = dir + "/cut.webm";
  std::ofstream(cut, std::ios::binary) << bytes.substr(0, 17000);
  Result t = watch({cut, "--timeline", dir + "/cut.csv"});
  INFO(t.log);
  CHECK(t.code == 3);
  CHECK(contains(t.log, "the stream broke at frame 25 of 60"));
}

TEST_CASE("watch: hostile and missing inputs are refused with the documented exit codes") {
  if (!have_photos()) {
    MESSAGE("SKIPPED (no ../shared/data/photos): watch end to end");
    std::exit(77);
  }
  std::string dir = testing::temp_dir("watch_hostile");
  auto write = [&](const std::string& name, const std::string& bytes) {
    std::ofstream(dir + "/" + name, std::ios::binary) << bytes;
    return dir + "/" + name;
  };
  cv::Mat a = face_patch("fr_obama.jpg");
  std::string good = make_video("good.avi", {{&a, 0, kFrames, 0, 60, 1, 0}});
  std::string bytes = testing::read_text(good);

  Result missing = watch({dir + "/nope.mp4"});
  CHECK(missing.code == 1);
  CHECK(contains(missing.log, dir + "/nope.mp4: file not found"));

  Result empty = watch({write("empty.avi", "")});
  CHECK(empty.code == 1);
  CHECK(contains(empty.log, "empty.avi"));

  Result header = watch({write("header.avi", bytes.substr(0, 4096))});
  CHECK(header.code == 1);
  CHECK(contains(header.log, "header.avi"));

  std::string noise;
  uint32_t x = 12345;
  for (int i = 0; i < 200000; ++i) noise.push_back((char)((x = x * 1664525u + 1013904223u) >> 24));
  Result random = watch({write("random.mp4", noise)});
  CHECK(random.code == 1);
  CHECK(contains(random.log, "random.mp4"));

  Result folder = watch({dir});
  CHECK(folder.code == 1);

  Result nothing = watch({});
  CHECK(nothing.code == 1);
  CHECK(contains(nothing.log, "give a VIDEO file or --camera N"));

  // --show without a display is refused before any work (with one, a window would open).
  const char* xd = std::getenv("DISPLAY");
  const char* wl = std::getenv("WAYLAND_DISPLAY");
  if (!(xd && *xd) && !(wl && *wl)) {
    Result show = watch({good, "--show"});
    CHECK(show.code == 1);
    CHECK(contains(show.log, "--show needs a display"));
  }

  Result camera = watch({"--camera", "99"});
  CHECK(camera.code == 1);
  CHECK(contains(camera.log, "camera 99 (/dev/video99)"));

  Result out = watch({good, "--out", dir + "/no/such/folder/a.mp4"});
  CHECK(out.code == 1);
  CHECK(contains(out.log, dir + "/no/such/folder/a.mp4"));
  Result ext = watch({good, "--out", dir + "/a.gif"});
  CHECK(ext.code == 1);
  CHECK(contains(ext.log, "a.gif"));

  std::string blank = make_video("blank.avi", {}, 20);
  Result none = watch({blank});
  CHECK(none.code == 2);
  CHECK(contains(none.log, "no face found in " + blank));

  // Cut mid-way: the frames before the cut are processed and written, the rest is reported.
  std::string cut = write("truncated.avi", bytes.substr(0, bytes.size() * 6 / 10));
  Result t = watch({cut, "--out", dir + "/truncated-out.avi", "--timeline", dir + "/truncated.csv"});
  INFO(t.log);
  CHECK(t.code == 3);
  CHECK(contains(t.log, "the stream broke at frame"));
  long long written = count_frames(dir + "/truncated-out.avi");
  CHECK(written > 20);
  CHECK(written < kFrames);
  int rows = 0;
  auto tracks = read_csv_tracks(dir + "/truncated.csv", &rows);
  CHECK(rows == written);  // one face, one row per written frame
  CHECK(contains(t.log, "broke at frame " + std::to_string(written) + " of 60"));
}
