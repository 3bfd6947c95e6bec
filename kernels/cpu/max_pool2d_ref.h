// Max pooling, templated on the scalar type (float for the kernel, double for gradient checks).
// The reference, and the CPU kernel for shapes other than 2x2 stride 2 (kernels/cpu/max_pool2d.cpp
// has those windows written out).
#pragma once
#include <cstdint>

#include "kernels/max_pool2d.h"

namespace emotune {

// Index (within the image plane) of the first maximum of window (oy, ox), row-major; a NaN wins
// the window (the first NaN, as a NaN compares as the maximum).
template <typename T>
inline int max_pool2d_argmax(const Pool2dShape& p, const T* plane, int oy, int ox) {
  int best = (oy * p.stride_h) * p.w + ox * p.stride_w;
  for (int i = 0; i < p.kh; ++i)
    for (int j = 0; j < p.kw; ++j) {
      const int idx = (oy * p.stride_h + i) * p.w + ox * p.stride_w + j;
      if (plane[best] != plane[best]) return best;  // NaN already found
      if (plane[idx] > plane[best] || plane[idx] != plane[idx]) best = idx;
    }
  return best;
}

template <typename T>
void max_pool2d_forward_ref(const Pool2dShape& p, const T* x, T* y) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int64_t nc = 0; nc < (int64_t)p.n * p.c; ++nc) {
    const T* plane = x + nc * p.h * p.w;
    T* out = y + nc * oh * ow;
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) out[oy * ow + ox] = plane[max_pool2d_argmax(p, plane, oy, ox)];
  }
}

// dx overwritten; overlapping windows (stride < kernel) add their gradients.
template <typename T>
void max_pool2d_backward_ref(const Pool2dShape& p, const T* x, const T* dy, T* dx) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int64_t nc = 0; nc < (int64_t)p.n * p.c; ++nc) {
    const T* plane = x + nc * p.h * p.w;
    const T* g = dy + nc * oh * ow;
    T* d = dx + nc * p.h * p.w;
    for (int i = 0; i < p.h * p.w; ++i) d[i] = T(0);
    for (int oy = 0; oy < oh; ++oy)
      for (int ox = 0; ox < ow; ++ox) d[max_pool2d_argmax(p, plane, oy, ox)] += g[oy * ow + ox];
  }
}

}  // namespace emotune
