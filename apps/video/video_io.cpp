#include "apps/video/video_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "apps/video/videoio_plugin.h"
#include "base/error.h"
#include "base/plugin.h"

namespace emotune {

namespace fs = std::filesystem;

namespace {

// libemotune_videoio.so, loaded on the first video opened and kept to the end of the process.
struct VideoioPlugin {
  VideoCaptureBackend* (*new_capture)() = nullptr;
  VideoWriterBackend* (*new_writer)() = nullptr;
};

const VideoioPlugin& videoio_plugin() {
  static const VideoioPlugin plugin = [] {
    const std::string file = EMOTUNE_VIDEOIO_PLUGIN;
    void* lib = plugin_open(file, "video input/output (OpenCV videoio)");
    auto abi = reinterpret_cast<int (*)()>(plugin_symbol(lib, "emotune_videoio_abi", file));
    if (abi() != kVideoioPluginAbi)
      throw Error(plugin_path(file) + ": plugin interface version " + std::to_string(abi()) +
                  ", this emotune needs " + std::to_string(kVideoioPluginAbi) +
                  " (a plugin from another build; rebuild or reinstall emotune)");
    VideoioPlugin p;
    p.new_capture = reinterpret_cast<decltype(p.new_capture)>(
        plugin_symbol(lib, "emotune_videoio_new_capture", file));
    p.new_writer = reinterpret_cast<decltype(p.new_writer)>(
        plugin_symbol(lib, "emotune_videoio_new_writer", file));
    return p;
  }();
  return plugin;
}

}  // namespace

VideoSource::~VideoSource() = default;

std::unique_ptr<VideoSource> VideoSource::open_file(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw Error(path + ": file not found");
  if (fs::is_directory(path, ec)) throw Error(path + ": is a folder, not a video file");
  if (FILE* f = std::fopen(path.c_str(), "rb"))
    std::fclose(f);
  else
    throw Error(path + ": cannot read: " + std::strerror(errno));
  std::unique_ptr<VideoSource> s(new VideoSource);
  s->info_.name = path;
  s->cap_.reset(videoio_plugin().new_capture());
  if (!s->cap_->open_file(path))
    throw Error(path + ": not a video that OpenCV's FFmpeg backend can open (unknown format, or "
                       "the header is damaged)");
  s->open_first_frame();
  return s;
}

std::unique_ptr<VideoSource> VideoSource::open_camera(int index) {
  if (index < 0) throw Error("--camera must be >= 0, got " + std::to_string(index));
  const std::string dev = "/dev/video" + std::to_string(index);
  std::unique_ptr<VideoSource> s(new VideoSource);
  s->info_.name = "camera " + std::to_string(index) + " (" + dev + ")";
  s->info_.camera = true;
  std::error_code ec;
  if (!fs::exists(dev, ec)) throw Error(s->info_.name + ": no such device");
  int fd = ::open(dev.c_str(), O_RDWR);
  if (fd < 0)
    throw Error(s->info_.name + ": cannot open: " + std::strerror(errno));
  ::close(fd);
  s->cap_.reset(videoio_plugin().new_capture());
  if (!s->cap_->open_camera(index))
    throw Error(s->info_.name + ": cannot open (busy with another program, or not a capture "
                                "device)");
  s->open_first_frame();
  return s;
}

void VideoSource::open_first_frame() {
  info_.width = (int)cap_->width();
  info_.height = (int)cap_->height();
  double fps = cap_->fps();
  // Containers without a rate (and many cameras) report 0 or nonsense; 30 is the common rate.
  info_.fps = std::isfinite(fps) && fps >= 1 && fps <= 1000 ? fps : 30.0;
  if (std::isfinite(fps) && fps >= 1 && fps <= 1000) container_fps_ = fps;
  double n = info_.camera ? -1 : cap_->frame_count();
  info_.frame_count = std::isfinite(n) && n > 0 ? (long long)std::llround(n) : -1;
  if (!cap_->read(first_) || first_.empty())
    throw Error(info_.name + ": no frame could be decoded (empty, header only, or damaged before "
                             "the first frame)");
  if (first_.type() != CV_8UC3)
    throw Error(info_.name + ": frames are not 8-bit colour (OpenCV type " +
                std::to_string(first_.type()) + ")");
  info_.width = first_.cols;
  info_.height = first_.rows;
  last_position_ms_ = cap_->position_ms();
  first_pending_ = true;
}

bool VideoSource::read(cv::Mat& bgr) {
  if (first_pending_) {
    first_pending_ = false;
    bgr = first_;
    first_.release();
    ++frames_read_;
    return true;
  }
  const bool ok = cap_->read(bgr);  // false also where OpenCV throws on a broken stream
  // A frame of another size or type mid-stream is a broken stream, not something to draw on.
  if (!ok || bgr.empty() || bgr.cols != info_.width || bgr.rows != info_.height ||
      bgr.type() != CV_8UC3)
    return false;
  ++frames_read_;
  last_position_ms_ = cap_->position_ms();
  return true;
}

bool VideoSource::broke() const {
  if (info_.camera) return true;  // a camera has no end of its own
  if (info_.frame_count <= 0 || frames_read_ >= info_.frame_count) return false;
  // Fewer frames than counted: whole if the last one is at the container's end (see the header).
  if (!std::isfinite(container_fps_) || !std::isfinite(last_position_ms_)) return true;
  const double interval_ms = 1000.0 / container_fps_;
  const double duration_ms = info_.frame_count * interval_ms;
  return last_position_ms_ + 2 * interval_ms < duration_ms;
}

VideoSink::VideoSink(const std::string& path, int width, int height, double fps) : path_(path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  // cv::VideoWriter::fourcc, which lives in the plugin's library.
  auto fourcc_of = [](const char (&c)[5]) { return c[0] | c[1] << 8 | c[2] << 16 | c[3] << 24; };
  int fourcc;
  if (ext == ".mp4" || ext == ".m4v" || ext == ".mkv")
    fourcc = fourcc_of("mp4v");
  else if (ext == ".avi")
    fourcc = fourcc_of("MJPG");
  else if (ext == ".webm")
    fourcc = fourcc_of("VP80");
  else
    throw Error(path + ": unknown video extension '" + ext + "' for --out (use .mp4, .avi, .mkv "
                       "or .webm)");
  fs::path parent = fs::path(path).parent_path();
  std::error_code ec;
  if (!parent.empty() && !fs::is_directory(parent, ec))
    throw Error(path + ": cannot write: folder " + parent.string() + " does not exist");
  // Probe with a plain open first: the writer's own failure says nothing about why.
  {
    bool existed = fs::exists(path, ec);
    FILE* f = std::fopen(path.c_str(), "ab");
    if (!f) throw Error(path + ": cannot write: " + std::strerror(errno));
    std::fclose(f);
    if (!existed) fs::remove(path, ec);
  }
  writer_.reset(videoio_plugin().new_writer());
  if (!writer_->open(path, fourcc, fps, width, height))
    throw Error(path + ": cannot create the video (codec for '" + ext +
                "' not available in this OpenCV build?)");
}

VideoSink::~VideoSink() { release(); }

void VideoSink::write(const cv::Mat& bgr) {
  writer_->write(bgr);
  ++frames_;
}

void VideoSink::release() {
  if (writer_) writer_->release();
}

}  // namespace emotune
