// The --show window. OpenCV's highgui is loaded at run time (dlopen) only when --show is asked
// for: linking it would load GTK and its dependencies into every emotune process, and a server
// or CI machine without a display never needs it.
#pragma once
#include <memory>
#include <opencv2/core.hpp>
#include <string>

namespace emotune {

class PreviewWindow {
 public:
  // Throws emotune::Error when no display is set (DISPLAY / WAYLAND_DISPLAY) or highgui
  // (EMOTUNE_HIGHGUI_SONAME, from the OpenCV the build found) cannot be loaded.
  explicit PreviewWindow(const std::string& title);
  ~PreviewWindow();
  // Shows a frame and handles window events; false when the user pressed q or Esc.
  bool show(const cv::Mat& bgr);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace emotune
