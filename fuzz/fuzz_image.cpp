// Fuzz target: image decoding (base/image.cpp: format sniffing, header size check, stb
// decode, grayscale) followed by what the app and the image-folder loader do next: a crop with a
// margin and the resize to 48x48. max_pixels is lowered to 4 Mpx so the fuzzer spends its time on
// decoder logic, not on allocating legitimately huge images.
#include "base/image.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return emotune::fuzz::run_accepting_errors([&] {
    emotune::GrayImage g = emotune::decode_gray_image(data, size, "fuzz-input", 4 << 20);
    if (g.width <= 0 || g.height <= 0 || g.pixels.size() != (size_t)g.width * g.height) std::abort();
    emotune::GrayImage c = emotune::crop_gray(g, -g.width / 4, g.height / 3, g.width, g.height);
    emotune::GrayImage r = emotune::resize_gray(c, 48, 48);
    if (r.pixels.size() != 48u * 48u) std::abort();
  });
}
