// Video in and out through OpenCV's videoio (Debian's build: the FFmpeg backend for files, V4L2
// for cameras), which is loaded at run time from the plugin libemotune_videoio.so the first time a
// video is opened (apps/video/videoio_plugin.h says why). Every failure, a missing plugin too, is
// an emotune::Error naming the file or the device; the command maps them to its exit codes
// (apps/cmd_watch.cpp).
#pragma once
#include <cmath>
#include <memory>
#include <opencv2/core.hpp>
#include <string>

namespace emotune {

class VideoCaptureBackend;  // apps/video/videoio_plugin.h
class VideoWriterBackend;

struct VideoInfo {
  std::string name;          // the path, or "camera N (/dev/videoN)"
  bool camera = false;
  int width = 0, height = 0;
  double fps = 0;            // from the container; 30 when it does not say (cameras often don't)
  long long frame_count = -1;  // from the container; -1 when unknown (cameras, some streams)
};

class VideoSource {
 public:
  // A video file. Throws when the file is missing, is not a video the backend can open, or has
  // no decodable first frame (header only, zero frames, truncated before the first frame).
  static std::unique_ptr<VideoSource> open_file(const std::string& path);
  // A V4L2 camera. Throws when /dev/videoN does not exist, cannot be opened (busy, no
  // permission) or delivers no first frame.
  static std::unique_ptr<VideoSource> open_camera(int index);
  ~VideoSource();

  // The next frame (BGR, 8-bit); false at the end of the stream or when it breaks. The first
  // frame was already decoded by open_*, read() hands it out first.
  bool read(cv::Mat& bgr);
  // After read() returned false: whether the stream ended short of what the container promised,
  // or, for a camera, stopped delivering frames. The container's frame count may be an estimate
  // (Matroska / WebM store none: FFmpeg derives it from duration x rate, which over-counts a
  // variable-rate clip), so a stream with fewer frames is still whole when its last frame's
  // timestamp reached the container's duration, within two frame intervals. A file cut short
  // ends long before its duration (or short of an exact count).
  bool broke() const;
  long long frames_read() const { return frames_read_; }
  const VideoInfo& info() const { return info_; }

 private:
  VideoSource() = default;
  void open_first_frame();
  std::unique_ptr<VideoCaptureBackend> cap_;
  cv::Mat first_;
  bool first_pending_ = false;
  long long frames_read_ = 0;
  double last_position_ms_ = NAN;  // timestamp of the last frame read
  double container_fps_ = NAN;     // the container's own rate, when it gave a sensible one
  VideoInfo info_;
};

// The annotated video. The codec follows the extension: .mp4 / .m4v mp4v, .avi MJPG, .mkv
// mp4v, .webm VP8. Throws naming the path when the extension is unknown or the file cannot be
// created (missing folder, no permission, codec missing). release() (or the destructor)
// finalises the container, so a clip cut short by a broken input is still playable.
class VideoSink {
 public:
  VideoSink(const std::string& path, int width, int height, double fps);
  ~VideoSink();
  void write(const cv::Mat& bgr);
  void release();
  long long frames_written() const { return frames_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::unique_ptr<VideoWriterBackend> writer_;
  long long frames_ = 0;
};

}  // namespace emotune
