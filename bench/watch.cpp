// `emotune watch` throughput on the CPU: frames/s end to end (decode, convert, detect, track,
// network, smooth, draw, encode) and milliseconds per stage, for a 640x480 clip with 1, 2 and 4
// faces, detection every k-th frame (k = 1, 3, 5, 10) and the motion step in between.
// A plain timing program (one run of apps/video's run_watch per configuration, as the command
// runs it) rather than Google Benchmark: a configuration is one pass over a clip.
//
// The clip is made here from the real photos in ../shared/data/photos (fr_obama, fr_biden,
// fr_obama2, fr_biden2): each face with its surroundings as a 200x200 (1-2 faces) or 160x160
// (4 faces) patch, drifting 1 px per frame over a plain background, 30 fps, MJPG in an .avi (what
// a webcam recorder writes); the annotated output is an .mp4 (mp4v), as --out writes it.
//
//   build/bin/bench_watch [--model models/vgg.safetensors] [--frames 150] [--json out.json]
//                         [--faces 1|2|4]  (only that clip)
//                         [--clip-out demo.avi]   (write the README's demo clip and exit)
//                         [--snapshot VIDEO --at N --png out.png]  (frame N of VIDEO as PNG, exit)
// frames/s is wall time, which on this shared machine depends on what else runs; frames/cpu_s
// (frames per second of CPU time of the whole process, all threads) does not, and on an idle
// 2-core machine the wall rate is at least that (the loop itself runs on one thread).
// Prints the provenance (date, commit, CPU, load average) and a Markdown table.
#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <opencv2/imgproc.hpp>
#include <opencv2/videoio.hpp>
#include <string>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/runtime_env.h"
#include "apps/video/draw.h"
#include "apps/video/watch.h"
#include "base/error.h"

using namespace emotune;
namespace fs = std::filesystem;

namespace {

const std::string kPhotos = std::string(EMOTUNE_SHARED_DIR) + "/data/photos/";

cv::Mat face_patch(const std::string& photo, int side) {
  GrayImage img = load_gray_image(kPhotos + photo);
  FaceDetector detector;
  auto faces = detector.detect(img);
  if (faces.empty()) throw Error(photo + ": no face");
  FaceBox crop = crop_box_with_margin(faces[0], img.width, img.height, 0.5);
  GrayImage patch = face_image(img, crop, side);
  cv::Mat g(side, side, CV_8UC1, patch.pixels.data()), bgr;
  cv::cvtColor(g, bgr, cv::COLOR_GRAY2BGR);
  return bgr.clone();
}

// n faces (1, 2 or 4) drifting over `frames` frames of 640x480 at 30 fps.
std::string make_clip(const std::string& path, int n, int frames) {
  const char* photos[] = {"fr_obama.jpg", "fr_biden.jpg", "fr_obama2.jpg", "fr_biden2.jpg"};
  const int side = n <= 2 ? 200 : 160;
  std::vector<cv::Mat> patches;
  for (int i = 0; i < n; ++i) patches.push_back(face_patch(photos[i], side));
  cv::VideoWriter w(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 30, {640, 480});
  if (!w.isOpened()) throw Error(path + ": cannot write");
  for (int f = 0; f < frames; ++f) {
    cv::Mat frame(480, 640, CV_8UC3, cv::Scalar(120, 130, 125));
    for (int i = 0; i < n; ++i) {
      int x0 = n == 1 ? 220 : n == 2 ? 60 + 320 * i : 60 + 320 * (i % 2);
      int y0 = n <= 2 ? 140 : 40 + 240 * (i / 2) - 20;
      int dx = (f % 80) < 40 ? f % 40 : 40 - f % 40;  // back and forth, 1 px per frame
      patches[i].copyTo(frame(cv::Rect(x0 + dx - 20, std::max(0, y0), side, side)));
    }
    w.write(frame);
  }
  return path;
}

// The demo clip of the README and docs/video.md: A (fr_obama, smiling) walks across for 10 s; B
// enters at 2 s with a straight face (fr_biden) that cross-fades over 4-5 s into a smile
// (fr_biden2, same place, so the track keeps its id) and leaves at 8 s; 30 fps, 640x480.
void make_demo_clip(const std::string& path) {
  cv::Mat a = face_patch("fr_obama.jpg", 200), b = face_patch("fr_biden.jpg", 200),
          c = face_patch("fr_biden2.jpg", 200);
  cv::VideoWriter w(path, cv::CAP_FFMPEG, cv::VideoWriter::fourcc('M', 'J', 'P', 'G'), 30, {640, 480});
  if (!w.isOpened()) throw Error(path + ": cannot write");
  for (int f = 0; f < 300; ++f) {
    cv::Mat frame(480, 640, CV_8UC3, cv::Scalar(120, 130, 125));
    a.copyTo(frame(cv::Rect(10 + f / 3, 140, 200, 200)));
    if (f >= 60 && f < 240) {
      double mix = std::clamp((f - 120) / 30.0, 0.0, 1.0);
      cv::Mat face;
      cv::addWeighted(b, 1 - mix, c, mix, 0, face);
      face.copyTo(frame(cv::Rect(420, 100 + (f - 60) / 6, 200, 200)));
    }
    w.write(frame);
  }
}

double cpu_seconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

std::string shell(const char* cmd) {
  std::string out;
  if (FILE* p = popen(cmd, "r")) {
    char buf[256];
    while (fgets(buf, sizeof buf, p)) out += buf;
    pclose(p);
  }
  while (!out.empty() && (out.back() == '\n' || out.back() == ' ')) out.pop_back();
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  // The runtime settings from the environment, as emotune reads them (no CPU-path re-exec here).
  emotune::runtime_start_from_env("bench_watch", argv, /*select_cpu_path=*/false);
  std::string model = std::string(EMOTUNE_SOURCE_DIR) + "/models/vgg.safetensors", json_out, clip_out;
  std::string snapshot, png;
  int frames = 150, at = 0, only_faces = 0;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    if (a == "--model") model = argv[i + 1];
    else if (a == "--frames") frames = std::atoi(argv[i + 1]);
    else if (a == "--json") json_out = argv[i + 1];
    else if (a == "--clip-out") clip_out = argv[i + 1];
    else if (a == "--snapshot") snapshot = argv[i + 1];
    else if (a == "--at") at = std::atoi(argv[i + 1]);
    else if (a == "--png") png = argv[i + 1];
    else if (a == "--faces") only_faces = std::atoi(argv[i + 1]);
  }
  try {
    if (!snapshot.empty()) {
      auto source = VideoSource::open_file(snapshot);
      cv::Mat frame;
      for (int i = 0; i <= at; ++i)
        if (!source->read(frame)) throw Error(snapshot + ": no frame " + std::to_string(at));
      write_png_bgr(png, frame);
      std::printf("wrote %s\n", png.c_str());
      return 0;
    }
    if (!clip_out.empty()) {
      make_demo_clip(clip_out);
      std::printf("wrote %s\n", clip_out.c_str());
      return 0;
    }
    if (!std::getenv("OMP_NUM_THREADS")) omp_set_num_threads(1);  // as emotune watch runs
    nlohmann::json doc;
    doc["date"] = shell("date -u +%Y-%m-%dT%H:%M:%SZ");
    doc["commit"] = shell("git -C " EMOTUNE_SOURCE_DIR " rev-parse --short HEAD");
    doc["cpu"] = shell("grep -m1 'model name' /proc/cpuinfo | cut -d: -f2");
    doc["hardware_threads"] = std::thread::hardware_concurrency();
    doc["loadavg_at_start"] = shell("cut -d' ' -f1-3 /proc/loadavg");
    doc["model"] = fs::path(model).filename().string();
    const char* blas = std::getenv("OPENBLAS_NUM_THREADS");
    doc["openblas_num_threads"] = blas ? blas : "unset (OpenBLAS default: all cores)";
    doc["frames"] = frames;
    std::printf("bench_watch: %s, commit %s, %s, %u threads, load average %s, model %s, %d frames "
                "640x480 per run\n",
                doc["date"].get<std::string>().c_str(), doc["commit"].get<std::string>().c_str(),
                doc["cpu"].get<std::string>().c_str(), std::thread::hardware_concurrency(),
                doc["loadavg_at_start"].get<std::string>().c_str(), doc["model"].get<std::string>().c_str(),
                frames);
    std::printf("\n| faces | detect every | frames/s | frames/cpu_s | decode | convert | detect | track | network | "
                "smooth | draw | encode | total ms/frame |\n|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    EmotionPipeline pipeline(model, Device::cpu, true, kDefaultFaceMargin);
    std::string dir = (fs::temp_directory_path() / "emotune_bench_watch").string();
    fs::create_directories(dir);
    for (int n : {1, 2, 4}) {
      if (only_faces && n != only_faces) continue;
      std::string clip = make_clip(dir + "/clip" + std::to_string(n) + ".avi", n, frames);
      for (int k : {1, 3, 5, 10}) {
        auto source = VideoSource::open_file(clip);
        WatchOptions o;
        o.detect_every = k;
        o.out = dir + "/out.mp4";
        const double cpu0 = cpu_seconds();
        WatchResult r = run_watch(*source, pipeline, o);
        const double cpu = cpu_seconds() - cpu0;
        const WatchTimes& t = r.times;
        const double f = (double)r.frames;
        auto tracks = summarize_tracks(r.rows, r.classes.size(), r.info.fps);
        std::printf("| %d | %d | %.1f | %.1f | %.2f | %.2f | %.2f | %.2f | %.2f | %.3f | %.2f | %.2f | %.2f |\n", n, k,
                    1000 * f / t.total, f / cpu, t.decode / f, t.convert / f, t.detect / f, t.track / f,
                    t.network / f, t.smooth / f, t.draw / f, t.encode / f, t.total / f);
        std::fflush(stdout);
        doc["runs"].push_back({{"faces", n}, {"detect_every", k}, {"frames", r.frames},
                               {"tracks", tracks.size()}, {"frames_per_s", 1000 * f / t.total}, {"frames_per_cpu_s", f / cpu},
                               {"ms_per_frame", {{"decode", t.decode / f}, {"convert", t.convert / f},
                                                 {"detect", t.detect / f}, {"track", t.track / f},
                                                 {"network", t.network / f}, {"smooth", t.smooth / f},
                                                 {"draw", t.draw / f}, {"encode", t.encode / f},
                                                 {"total", t.total / f}}}});
      }
    }
    doc["loadavg_at_end"] = shell("cut -d' ' -f1-3 /proc/loadavg");
    std::printf("\nload average at the end: %s\n", doc["loadavg_at_end"].get<std::string>().c_str());
    if (!json_out.empty()) std::ofstream(json_out) << doc.dump(1) << "\n";
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_watch: %s\n", e.what());
    return 1;
  }
  return 0;
}
