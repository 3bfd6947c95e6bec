// libemotune_videoio.so: OpenCV's videoio (FFmpeg for files, V4L2 for cameras) behind the
// interface of apps/video/videoio_plugin.h. Loaded by apps/video/video_io.cpp for `emotune watch`
// only. Plain calls through to OpenCV; the checks and messages stay in video_io.cpp.
#include <opencv2/videoio.hpp>

#include "apps/video/videoio_plugin.h"

namespace emotune {
namespace {

class Capture final : public VideoCaptureBackend {
 public:
  bool open_file(const std::string& path) override {
    // CAP_FFMPEG only: the other backends (GStreamer, images) guess at non-video files.
    return cap_.open(path, cv::CAP_FFMPEG) && cap_.isOpened();
  }
  bool open_camera(int index) override { return cap_.open(index, cv::CAP_V4L2) && cap_.isOpened(); }
  double width() override { return cap_.get(cv::CAP_PROP_FRAME_WIDTH); }
  double height() override { return cap_.get(cv::CAP_PROP_FRAME_HEIGHT); }
  double fps() override { return cap_.get(cv::CAP_PROP_FPS); }
  double frame_count() override { return cap_.get(cv::CAP_PROP_FRAME_COUNT); }
  double position_ms() override { return cap_.get(cv::CAP_PROP_POS_MSEC); }
  bool read(cv::Mat& bgr) override {
    // OpenCV throws cv::Exception on some broken streams instead of returning false.
    try {
      return cap_.read(bgr);
    } catch (const cv::Exception&) {
      return false;
    }
  }

 private:
  cv::VideoCapture cap_;
};

class Writer final : public VideoWriterBackend {
 public:
  bool open(const std::string& path, int fourcc, double fps, int width, int height) override {
    return writer_.open(path, cv::CAP_FFMPEG, fourcc, fps, cv::Size(width, height), true) &&
           writer_.isOpened();
  }
  void write(const cv::Mat& bgr) override { writer_.write(bgr); }
  void release() override {
    if (writer_.isOpened()) writer_.release();
  }

 private:
  cv::VideoWriter writer_;
};

}  // namespace
}  // namespace emotune

extern "C" int emotune_videoio_abi() { return kVideoioPluginAbi; }
extern "C" emotune::VideoCaptureBackend* emotune_videoio_new_capture() { return new emotune::Capture; }
extern "C" emotune::VideoWriterBackend* emotune_videoio_new_writer() { return new emotune::Writer; }
