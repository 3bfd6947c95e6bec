// The interface of the video codec plugin, libemotune_videoio.so (apps/video/plugin/videoio.cpp):
// OpenCV's VideoCapture and VideoWriter behind two abstract classes. OpenCV's videoio links
// FFmpeg, GStreamer and ~200 more libraries (0.2 s of every process start, docs/benchmarks.md),
// so only `emotune watch` loads them, through video_io.cpp; every other command starts without.
// The plugin is built with emotune from the same sources and compiler, so C++ types (cv::Mat,
// std::string) cross the boundary; no exception does: failures come back as false.
#pragma once
#include <opencv2/core.hpp>
#include <string>

namespace emotune {

class VideoCaptureBackend {
 public:
  virtual ~VideoCaptureBackend() = default;
  virtual bool open_file(const std::string& path) = 0;  // the FFmpeg backend only
  virtual bool open_camera(int index) = 0;              // the V4L2 backend
  // What the container or the driver says; 0 (or nonsense) when it does not know.
  virtual double width() = 0;
  virtual double height() = 0;
  virtual double fps() = 0;
  virtual double frame_count() = 0;
  // The next frame; false at the end, on a decoder error, or when OpenCV throws.
  virtual bool read(cv::Mat& bgr) = 0;
  // The timestamp of the frame read last, in milliseconds from the start (NaN when unknown).
  virtual double position_ms() = 0;
};

class VideoWriterBackend {
 public:
  virtual ~VideoWriterBackend() = default;
  // The FFmpeg backend, 8-bit colour frames.
  virtual bool open(const std::string& path, int fourcc, double fps, int width, int height) = 0;
  virtual void write(const cv::Mat& bgr) = 0;
  virtual void release() = 0;  // finalises the container; a no-op when not open
};

}  // namespace emotune

// The plugin's entry points, by C name. kVideoioPluginAbi changes whenever the classes above do,
// so a plugin left over from another build is refused with a message instead of crashing.
inline constexpr int kVideoioPluginAbi = 2;
extern "C" int emotune_videoio_abi();
extern "C" emotune::VideoCaptureBackend* emotune_videoio_new_capture();
extern "C" emotune::VideoWriterBackend* emotune_videoio_new_writer();
