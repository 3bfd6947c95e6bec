// `emotune watch VIDEO | --camera N [--out annotated.mp4] [--timeline file.csv|.json]
//  [--plot timeline.png] [--recommend N] [--show] [--detect-every K] [--smooth SECONDS]
//  [--hysteresis P] [--model PATH] [--device cpu|cuda] [--margin F] [--max-frames N]`
// Faces tracked across the frames of a video file or a V4L2 camera, a smoothed mood per person,
// and music for what was watched. The loop is apps/video/watch.h; this file parses flags, prints
// the summary and the recommendation, and picks the exit status. docs/video.md has the details.
//
// Exit status:
//   0  the whole stream was read (or the user stopped it: q/Esc in --show, Ctrl-C, --max-frames)
//      and at least one face was seen
//   1  error before any frame was processed: missing file, not a video, zero frames, a camera
//      that does not exist or is busy, an unwritable --out/--timeline/--plot, a bad option or
//      model. Nothing is written.
//   2  the whole stream was read but no face was seen in any frame (outputs are still written)
//   3  the stream broke mid-way (truncated or corrupt file, camera unplugged): everything up to
//      the last good frame is written and readable, and stderr names the frame it stopped at
#include <atomic>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <iostream>

#include "apps/commands.h"
#include "engine/runtime.h"
#include "apps/music/mood_table.h"
#include "apps/music/recommend.h"
#include "apps/pipeline/paths.h"
#include "apps/video/draw.h"
#include "apps/video/watch.h"
#include "base/error.h"

namespace emotune {

namespace {

std::atomic<bool> g_stop{false};
void on_interrupt(int) { g_stop = true; }

// Shares as "happy 81%, neutral 12%" (classes >= 5%, largest first).
std::string shares_text(const std::vector<std::string>& classes, const std::vector<double>& shares) {
  std::vector<size_t> order(shares.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return shares[a] > shares[b]; });
  std::string s;
  for (size_t i : order) {
    if (shares[i] < 0.05) continue;
    char b[64];
    std::snprintf(b, sizeof b, "%s%s %.0f%%", s.empty() ? "" : ", ", classes[i].c_str(), 100 * shares[i]);
    s += b;
  }
  return s.empty() ? "-" : s;
}

void print_summary(const WatchResult& r, int detect_every) {
  const VideoInfo& v = r.info;
  std::printf("video: %s, %dx%d, %.2f fps, %lld frames (%.2f s), detection every %d frame%s\n",
              v.name.c_str(), v.width, v.height, v.fps, r.frames, r.frames / v.fps, detect_every,
              detect_every == 1 ? "" : "s");
  auto tracks = summarize_tracks(r.rows, r.classes.size(), v.fps);
  std::printf("tracks: %zu\n", tracks.size());
  for (const auto& t : tracks)
    std::printf("  #%-3d %6.2f s in view (%.2f-%.2f s)  dominant %-8s  shown: %s\n", t.id, t.seconds,
                t.first_s, t.last_s + 1 / v.fps, r.classes[t.dominant].c_str(),
                shares_text(r.classes, t.shares).c_str());
  std::printf("speed: %s\n", r.times.per_frame(r.frames).c_str());
}

struct WatchCommandOptions {
  std::string video;
  int camera = -1;
  std::string out, timeline, plot;
  bool show = false, explain = false;
  int recommend = 0;
  std::string tracks = kDefaultTracks, policy = "match";
  int detect_every = WatchOptions{}.detect_every;
  double smooth = SmoothingOptions{}.time_constant_s, hysteresis = SmoothingOptions{}.hysteresis;
  double min_segment = 3.0;
  FaceOptions faces;
  long long max_frames = -1;
};

void add_watch_flags(CLI::App* cmd, WatchCommandOptions& opt) {
  auto* video = cmd->add_option("video", opt.video, "video file (mp4, avi, mkv, webm, ...)");
  auto* camera = cmd->add_option("--camera", opt.camera, "V4L2 camera index (/dev/videoN)");
  video->excludes(camera);
  cmd->add_option("--out", opt.out, "write the annotated video (.mp4, .avi, .mkv, .webm)");
  cmd->add_option("--timeline", opt.timeline, "write every tracked face of every frame (.csv or .json)");
  cmd->add_option("--plot", opt.plot, "write the timeline plot (PNG)");
  cmd->add_flag("--show", opt.show, "show the annotated frames in a window (q or Esc stops)");
  cmd->add_flag("--explain", opt.explain,
                "draw where the network looked (Grad-CAM of each face's label) in --out / --show; "
                "one backward pass per face per frame");
  cmd->add_option("--recommend", opt.recommend, "print N tracks for the clip's mood (per segment when it changes)")
      ->check(CLI::Range(0, 1000));
  cmd->add_option("--tracks", opt.tracks, "mood table CSV")->capture_default_str();
  cmd->add_option("--policy", opt.policy, "match or uplift (docs/music.md)")
      ->check(CLI::IsMember({"match", "uplift"}))
      ->capture_default_str();
  cmd->add_option("--detect-every", opt.detect_every, "run the face detector every K frames, track in between")
      ->capture_default_str();
  cmd->add_option("--smooth", opt.smooth, "time constant of the mood smoothing, seconds (0: off)")
      ->capture_default_str();
  cmd->add_option("--hysteresis", opt.hysteresis, "lead another class needs before the label changes")
      ->capture_default_str();
  cmd->add_option("--min-segment", opt.min_segment, "shortest mood segment for --recommend, seconds")
      ->capture_default_str();
  add_face_options(cmd, opt.faces);
  cmd->add_option("--max-frames", opt.max_frames, "stop after N frames");
}

// The loop's options, checked (with --plot's file) before anything is loaded.
WatchOptions watch_options(const WatchCommandOptions& opt) {
  WatchOptions wo;
  wo.detect_every = opt.detect_every;
  wo.smoothing = {opt.smooth, opt.hysteresis};
  validate_smoothing_options(wo.smoothing);
  if (opt.detect_every < 1) throw Error("--detect-every must be >= 1");
  if (!(opt.min_segment >= 0)) throw Error("--min-segment must be >= 0");
  wo.out = opt.out;
  wo.timeline = opt.timeline;
  wo.show = opt.show;
  wo.explain = opt.explain;
  if (opt.explain && opt.out.empty() && !opt.show)
    throw Error("--explain draws on the video: it needs --out FILE or --show");
  wo.max_frames = opt.max_frames;
  if (!opt.plot.empty()) {  // fail now rather than after the whole clip
    FILE* f = std::fopen(opt.plot.c_str(), "ab");
    if (!f) throw Error(opt.plot + ": cannot write the plot");
    std::fclose(f);
  }
  return wo;
}

// run_watch with Ctrl-C stopping the loop (its outputs are still finalised) instead of the process.
WatchResult run_interruptible(VideoSource& source, const EmotionPipeline& pipeline, const WatchOptions& wo) {
  g_stop = false;
  auto old_handler = std::signal(SIGINT, on_interrupt);
  WatchResult r;
  try {
    r = run_watch(source, pipeline, wo, &g_stop);
  } catch (...) {
    std::signal(SIGINT, old_handler);
    throw;
  }
  std::signal(SIGINT, old_handler);
  return r;
}

// `count` tracks for each mood segment of the clip (one segment when the mood held).
void print_recommendations(const WatchResult& r, const MoodTable& table, Policy policy, int count,
                           double min_segment) {
  auto segments = mood_segments(r.rows, r.classes.size(), r.info.fps, min_segment);
  if (segments.empty()) std::printf("recommendation: none (no face in the clip)\n");
  for (size_t i = 0; i < segments.size(); ++i) {
    const MoodSegment& s = segments[i];
    MoodTarget target = compute_mood_target(r.classes, s.probabilities, policy);
    std::printf("\n%s %.2f-%.2f s: %s\n", segments.size() == 1 ? "mood of the clip," : "mood segment,",
                s.start_s, s.end_s, explain_recommendation(r.classes, s.probabilities, target).c_str());
    int rank = 0;
    for (const RankedTrack& t : rank_tracks(table, target.target, count))
      std::printf("  %2d. %s - %s (valence %.2f, energy %.2f)\n", ++rank, t.track->artist.c_str(),
                  t.track->title.c_str(), t.track->valence, t.track->energy);
  }
}

// Exit status 3 for a broken stream, 2 for a clip without a face (the table at the top).
void set_exit_status(const WatchResult& r) {
  if (r.broke) {
    std::cerr << "emotune watch: " << r.stop_reason << "\n";
    cli_exit_code() = 3;
  } else if (r.rows.empty()) {
    std::cerr << "emotune watch: no face found in " << r.info.name << "\n";
    cli_exit_code() = 2;
  }
}

}  // namespace

void add_watch_command(CLI::App& app) {
  auto opt = std::make_shared<WatchCommandOptions>();
  CLI::App* cmd = app.add_subcommand(
      "watch", "Track the faces of a video or camera, smooth each person's mood, recommend music");
  add_watch_flags(cmd, *opt);

  cmd->callback([opt]() {
    if (opt->video.empty() && opt->camera < 0) throw Error("give a VIDEO file or --camera N");
    runtime_apply_thread_rule(FrontEnd::watch);  // one thread unless the user chose (engine/runtime.h)
    const WatchOptions wo = watch_options(*opt);
    MoodTable table;
    Policy policy = parse_policy(opt->policy);
    if (opt->recommend > 0) table = read_mood_table(resolve_option_path(opt->tracks, kDefaultTracks));
    const std::unique_ptr<EmotionPipeline> made = make_pipeline(opt->faces, /*detect=*/true, /*listener=*/false);
    std::unique_ptr<VideoSource> source =
        opt->camera >= 0 ? VideoSource::open_camera(opt->camera) : VideoSource::open_file(opt->video);

    const WatchResult r = run_interruptible(*source, *made, wo);
    print_summary(r, wo.detect_every);
    if (!opt->plot.empty())
      plot_timeline(opt->plot, r.rows, r.classes, r.frames / r.info.fps, r.info.fps,
                    "emotune watch: " + r.info.name);
    if (opt->recommend > 0) print_recommendations(r, table, policy, opt->recommend, opt->min_segment);
    std::fflush(stdout);
    set_exit_status(r);
  });
}

}  // namespace emotune
