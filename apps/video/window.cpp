#include "apps/video/window.h"

#include <dlfcn.h>

#include <cstdlib>

#include "base/error.h"

namespace emotune {

// The C++ entry points of highgui, by their Itanium-ABI names (OpenCV 4, libstdc++'s
// std::__cxx11::string): cv::namedWindow(const String&, int), cv::imshow(const String&,
// InputArray), cv::waitKey(int), cv::destroyAllWindows().
struct PreviewWindow::Impl {
  void* lib = nullptr;
  std::string title;
  void (*named_window)(const std::string&, int) = nullptr;
  void (*imshow)(const std::string&, const cv::_InputArray&) = nullptr;
  int (*wait_key)(int) = nullptr;
  void (*destroy_all)() = nullptr;
};

PreviewWindow::PreviewWindow(const std::string& title) : impl_(std::make_unique<Impl>()) {
  const char* x = std::getenv("DISPLAY");
  const char* w = std::getenv("WAYLAND_DISPLAY");
  if (!(x && *x) && !(w && *w))
    throw Error("--show needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set (use --out "
                "to write the annotated video instead)");
  impl_->lib = dlopen(EMOTUNE_HIGHGUI_SONAME, RTLD_NOW | RTLD_LOCAL);
  if (!impl_->lib)
    throw Error(std::string("--show: cannot load OpenCV's highgui (") + EMOTUNE_HIGHGUI_SONAME +
                "): " + dlerror() + " (apt-get install libopencv-highgui406)");
  auto sym = [&](const char* name) {
    void* p = dlsym(impl_->lib, name);
    if (!p) throw Error(std::string("--show: highgui has no symbol ") + name);
    return p;
  };
  impl_->named_window = reinterpret_cast<decltype(impl_->named_window)>(
      sym("_ZN2cv11namedWindowERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEi"));
  impl_->imshow = reinterpret_cast<decltype(impl_->imshow)>(
      sym("_ZN2cv6imshowERKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEERKNS_11_InputArrayE"));
  impl_->wait_key = reinterpret_cast<decltype(impl_->wait_key)>(sym("_ZN2cv7waitKeyEi"));
  impl_->destroy_all = reinterpret_cast<decltype(impl_->destroy_all)>(sym("_ZN2cv17destroyAllWindowsEv"));
  impl_->title = title;
  impl_->named_window(title, 1 /* WINDOW_AUTOSIZE */);
}

PreviewWindow::~PreviewWindow() {
  if (impl_ && impl_->destroy_all) impl_->destroy_all();
  // The library stays loaded: GUI toolkits register atexit handlers that must still find it.
}

bool PreviewWindow::show(const cv::Mat& bgr) {
  impl_->imshow(impl_->title, cv::_InputArray(bgr));
  int key = impl_->wait_key(1);
  return !(key == 'q' || key == 'Q' || key == 27);
}

}  // namespace emotune
