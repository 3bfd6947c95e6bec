// max_pool2d on the GPU. Forward: one thread per output. Backward: one thread per INPUT element,
// which gathers dy from every window that contains it and whose first maximum it is (recomputed
// from x, as the CPU kernel does): each dx element has one writer, so no atomics and no zeroing
// pass, and overlapping windows add in a fixed order.
#include "kernels/cuda/common.cuh"
#include "kernels/max_pool2d.h"

namespace emotune {

namespace {

constexpr int kThreads = 256;

// Index within the plane of the first maximum of window (oy, ox), row-major; the first NaN wins.
// The same rule, step for step, as max_pool2d_argmax in kernels/cpu/max_pool2d_ref.h.
__device__ __forceinline__ int window_argmax(const Pool2dShape& p, const float* plane, int oy, int ox) {
  const int y0 = oy * p.stride_h, x0 = ox * p.stride_w;
  int best = y0 * p.w + x0;
  float best_v = plane[best];
  for (int i = 0; i < p.kh; ++i)
    for (int j = 0; j < p.kw; ++j) {
      if (best_v != best_v) return best;  // NaN already found
      const int idx = (y0 + i) * p.w + x0 + j;
      const float v = plane[idx];
      if (v > best_v || v != v) {
        best = idx;
        best_v = v;
      }
    }
  return best;
}

// The output size comes from the host: the shape's member functions are host-only.
__global__ void max_pool2d_forward_kernel(Pool2dShape p, int oh, int ow, const float* __restrict__ x,
                                          float* __restrict__ y) {
  const int64_t total = (int64_t)p.n * p.c * oh * ow;
  EMOTUNE_GRID_STRIDE(i, total) {
    const int ox = (int)(i % ow);
    const int oy = (int)((i / ow) % oh);
    const int64_t plane = i / ((int64_t)oh * ow);
    const float* xp = x + plane * p.h * p.w;
    y[i] = xp[window_argmax(p, xp, oy, ox)];
  }
}

__global__ void max_pool2d_backward_kernel(Pool2dShape p, int oh, int ow, const float* __restrict__ x,
                                           const float* __restrict__ dy, float* __restrict__ dx) {
  const int64_t total = (int64_t)p.n * p.c * p.h * p.w;
  EMOTUNE_GRID_STRIDE(i, total) {
    const int ix = (int)(i % p.w);
    const int iy = (int)((i / p.w) % p.h);
    const int64_t plane = i / ((int64_t)p.h * p.w);
    const float* xp = x + plane * p.h * p.w;
    const float* gp = dy + plane * oh * ow;
    const int me = iy * p.w + ix;
    // Windows oy with oy*sh <= iy < oy*sh + kh, i.e. oy in [ceil((iy-kh+1)/sh), floor(iy/sh)].
    const int oy_lo = iy - p.kh + 1 > 0 ? (iy - p.kh + 1 + p.stride_h - 1) / p.stride_h : 0;
    const int ox_lo = ix - p.kw + 1 > 0 ? (ix - p.kw + 1 + p.stride_w - 1) / p.stride_w : 0;
    const int oy_hi = min(iy / p.stride_h, oh - 1);
    const int ox_hi = min(ix / p.stride_w, ow - 1);
    float g = 0.0f;
    for (int oy = oy_lo; oy <= oy_hi; ++oy)
      for (int ox = ox_lo; ox <= ox_hi; ++ox)
        if (window_argmax(p, xp, oy, ox) == me) g += gp[oy * ow + ox];
    dx[i] = g;
  }
}

void check_shape(const Pool2dShape& p, const char* fn) {
  if (p.n < 0 || p.c < 0 || p.kh < 1 || p.kw < 1 || p.stride_h < 1 || p.stride_w < 1 ||
      p.h < p.kh || p.w < p.kw)
    throw Error(std::string(fn) + ": invalid pool shape (h " + std::to_string(p.h) + ", w " +
                std::to_string(p.w) + ", kernel " + std::to_string(p.kh) + "x" +
                std::to_string(p.kw) + ", stride " + std::to_string(p.stride_h) + "x" +
                std::to_string(p.stride_w) + ")");
}

}  // namespace

void max_pool2d_forward_cuda(const Pool2dShape& p, const float* x, float* y) {
  check_shape(p, "max_pool2d_forward_cuda");
  const int64_t total = p.y_size();
  if (total == 0) return;
  max_pool2d_forward_kernel<<<grid_for(total, kThreads), kThreads, 0, cuda_stream()>>>(p, p.out_h(), p.out_w(), x, y);
  EMOTUNE_LAUNCH_CHECK();
}

void max_pool2d_backward_cuda(const Pool2dShape& p, const float* x, const float* dy, float* dx) {
  check_shape(p, "max_pool2d_backward_cuda");
  const int64_t total = p.x_size();
  if (total == 0) return;
  max_pool2d_backward_kernel<<<grid_for(total, kThreads), kThreads, 0, cuda_stream()>>>(
      p, p.out_h(), p.out_w(), x, dy, dx);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune
