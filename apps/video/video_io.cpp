#include "apps/video/video_io.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "base/error.h"

namespace emotune {

namespace fs = std::filesystem;

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
  // CAP_FFMPEG only: the other backends (GStreamer, images) guess at non-video files.
  if (!s->cap_.open(path, cv::CAP_FFMPEG) || !s->cap_.isOpened())
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
  if (!s->cap_.open(index, cv::CAP_V4L2) || !s->cap_.isOpened())
    throw Error(s->info_.name + ": cannot open (busy with another program, or not a capture "
                                "device)");
  s->open_first_frame();
  return s;
}

void VideoSource::open_first_frame() {
  info_.width = (int)cap_.get(cv::CAP_PROP_FRAME_WIDTH);
  info_.height = (int)cap_.get(cv::CAP_PROP_FRAME_HEIGHT);
  double fps = cap_.get(cv::CAP_PROP_FPS);
  // Containers without a rate (and many cameras) report 0 or nonsense; 30 is the common rate.
  info_.fps = std::isfinite(fps) && fps >= 1 && fps <= 1000 ? fps : 30.0;
  double n = info_.camera ? -1 : cap_.get(cv::CAP_PROP_FRAME_COUNT);
  info_.frame_count = std::isfinite(n) && n > 0 ? (long long)std::llround(n) : -1;
  if (!cap_.read(first_) || first_.empty())
    throw Error(info_.name + ": no frame could be decoded (empty, header only, or damaged before "
                             "the first frame)");
  if (first_.type() != CV_8UC3)
    throw Error(info_.name + ": frames are not 8-bit colour (OpenCV type " +
                std::to_string(first_.type()) + ")");
  info_.width = first_.cols;
  info_.height = first_.rows;
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
  // OpenCV throws cv::Exception on some broken streams instead of returning false.
  bool ok = false;
  try {
    ok = cap_.read(bgr);
  } catch (const cv::Exception&) {
    ok = false;
  }
  // A frame of another size or type mid-stream is a broken stream, not something to draw on.
  if (!ok || bgr.empty() || bgr.cols != info_.width || bgr.rows != info_.height ||
      bgr.type() != CV_8UC3)
    return false;
  ++frames_read_;
  return true;
}

bool VideoSource::broke() const {
  if (info_.camera) return true;  // a camera has no end of its own
  return info_.frame_count > 0 && frames_read_ < info_.frame_count;
}

VideoSink::VideoSink(const std::string& path, int width, int height, double fps) : path_(path) {
  std::string ext = fs::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(), [](unsigned char c) { return std::tolower(c); });
  int fourcc;
  if (ext == ".mp4" || ext == ".m4v" || ext == ".mkv")
    fourcc = cv::VideoWriter::fourcc('m', 'p', '4', 'v');
  else if (ext == ".avi")
    fourcc = cv::VideoWriter::fourcc('M', 'J', 'P', 'G');
  else if (ext == ".webm")
    fourcc = cv::VideoWriter::fourcc('V', 'P', '8', '0');
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
  if (!writer_.open(path, cv::CAP_FFMPEG, fourcc, fps, cv::Size(width, height), true) ||
      !writer_.isOpened())
    throw Error(path + ": cannot create the video (codec for '" + ext +
                "' not available in this OpenCV build?)");
}

VideoSink::~VideoSink() { release(); }

void VideoSink::write(const cv::Mat& bgr) {
  writer_.write(bgr);
  ++frames_;
}

void VideoSink::release() {
  if (writer_.isOpened()) writer_.release();
}

}  // namespace emotune
