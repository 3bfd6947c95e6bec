// conv2d kernels that are not GEMMs: the direct kernels for shapes where a GEMM tile would be
// mostly padding (the first layer has one input channel: C*R*S = 9), the naive fallbacks with
// 64-bit indices, and the two reductions (bias gradient, split partial sums).
// The shape's member functions are host-only, so the launchers pass the output size along.
#include <algorithm>
#include <string>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv2d_cuda.h"

namespace emotune::conv {

namespace {

constexpr int kThreads = 256;
constexpr int kDirectKChunk = 64;  // output channels per block of the direct forward

// Forward, C*R*S <= MAXT: a thread gathers its output pixel's C*R*S inputs into registers once,
// then produces that pixel for every output channel of the block's chunk (filter in shared
// memory, read as a broadcast). Stores are coalesced: neighbouring threads, neighbouring pixels.
template <int MAXT>
__global__ void forward_direct_kernel(Conv2dShape p, int oh, int ow, const float* __restrict__ x,
                                      const float* __restrict__ w, const float* __restrict__ b,
                                      float* __restrict__ y) {
  extern __shared__ float w_s[];  // [kc][crs]
  const int rs = p.r * p.s, crs = p.c * rs, ohw = oh * ow;
  const int k0 = blockIdx.y * kDirectKChunk, kc = min(kDirectKChunk, p.k - k0);
  for (int i = threadIdx.x; i < kc * crs; i += blockDim.x) w_s[i] = w[k0 * crs + i];
  __syncthreads();
  const int total = p.n * ohw;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
    const int img = idx / ohw, pix = idx - img * ohw;
    const int oy = pix / ow, ox = pix - oy * ow;
    float v[MAXT];
#pragma unroll
    for (int t = 0; t < MAXT; ++t) {
      v[t] = 0.0f;
      if (t < crs) {
        const int c = t / rs, tt = t - c * rs, r = tt / p.s, s = tt - r * p.s;
        const int hi = oy * p.stride_h - p.pad_h + r, wi = ox * p.stride_w - p.pad_w + s;
        if ((unsigned)hi < (unsigned)p.h && (unsigned)wi < (unsigned)p.w)
          v[t] = x[((img * p.c + c) * p.h + hi) * p.w + wi];
      }
    }
    for (int kl = 0; kl < kc; ++kl) {
      float acc = b ? b[k0 + kl] : 0.0f;
#pragma unroll
      for (int t = 0; t < MAXT; ++t)
        if (t < crs) acc = fmaf(v[t], w_s[kl * crs + t], acc);
      y[(img * p.k + k0 + kl) * ohw + pix] = acc;
    }
  }
}

// Backward_input, small C: one thread per dx element, the whole filter in shared memory.
__global__ void backward_input_direct_kernel(Conv2dShape p, int oh, int ow, const float* __restrict__ dy,
                                             const float* __restrict__ w, float* __restrict__ dx) {
  extern __shared__ float w_s[];  // [K][C][R][S]
  const int filter = p.k * p.c * p.r * p.s;
  for (int i = threadIdx.x; i < filter; i += blockDim.x) w_s[i] = w[i];
  __syncthreads();
  const int total = p.n * p.c * p.h * p.w;
  for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += gridDim.x * blockDim.x) {
    const int wi = idx % p.w;
    int t = idx / p.w;
    const int hi = t % p.h;
    t /= p.h;
    const int c = t % p.c, img = t / p.c;
    float acc = 0.0f;
    for (int k = 0; k < p.k; ++k) {
      const float* dyk = dy + (img * p.k + k) * oh * ow;
      const float* wk = w_s + (k * p.c + c) * p.r * p.s;
      for (int r = 0; r < p.r; ++r) {
        const int th = hi + p.pad_h - r;
        if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= oh) continue;
        const int py = th / p.stride_h;
        for (int s = 0; s < p.s; ++s) {
          const int tw = wi + p.pad_w - s;
          if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= ow) continue;
          acc = fmaf(dyk[py * ow + tw / p.stride_w], wk[r * p.s + s], acc);
        }
      }
    }
    dx[idx] = acc;
  }
}

// Backward_weight, C*R*S <= MAXT: block (k, split) runs over its reduction range; each thread
// keeps one partial sum per filter tap, then the block adds them up in a fixed order.
template <int MAXT>
__global__ void backward_weight_direct_kernel(Conv2dShape p, int oh, int ow, int chunk,
                                              const float* __restrict__ x, const float* __restrict__ dy,
                                              float* __restrict__ partial) {
  __shared__ int tap_off[MAXT], tap_r[MAXT], tap_s[MAXT];
  __shared__ float red[32];
  const int rs = p.r * p.s, crs = p.c * rs, ohw = oh * ow, hw = p.h * p.w;
  const int k = blockIdx.x, split = blockIdx.y;
  for (int t = threadIdx.x; t < crs; t += blockDim.x) {
    const int c = t / rs, tt = t - c * rs;
    tap_off[t] = c * hw;
    tap_r[t] = tt / p.s;
    tap_s[t] = tt - tap_r[t] * p.s;
  }
  __syncthreads();
  const int l_total = p.n * ohw;
  const int l_begin = split * chunk, l_end = min(l_total, l_begin + chunk);
  float acc[MAXT];
#pragma unroll
  for (int t = 0; t < MAXT; ++t) acc[t] = 0.0f;
  for (int l = l_begin + threadIdx.x; l < l_end; l += blockDim.x) {
    const int img = l / ohw, pix = l - img * ohw;
    const int oy = pix / ow, ox = pix - oy * ow;
    const float g = dy[(img * p.k + k) * ohw + pix];
    const float* ximg = x + img * p.c * hw;
    const int hy = oy * p.stride_h - p.pad_h, wx = ox * p.stride_w - p.pad_w;
#pragma unroll
    for (int t = 0; t < MAXT; ++t) {
      if (t < crs) {
        const int hi = hy + tap_r[t], wi = wx + tap_s[t];
        if ((unsigned)hi < (unsigned)p.h && (unsigned)wi < (unsigned)p.w)
          acc[t] = fmaf(g, ximg[tap_off[t] + hi * p.w + wi], acc[t]);
      }
    }
  }
  float* out = partial + ((size_t)split * p.k + k) * crs;
#pragma unroll
  for (int t = 0; t < MAXT; ++t) {
    if (t < crs) {  // crs is the same for the whole block: every thread reaches the barriers
      const float v = block_reduce_sum(acc[t], red);
      if (threadIdx.x == 0) out[t] = v;
    }
  }
}

__global__ void forward_naive_kernel(Conv2dShape p, int oh, int ow, const float* __restrict__ x,
                                     const float* __restrict__ w, const float* __restrict__ b,
                                     float* __restrict__ y) {
  const int64_t total = (int64_t)p.n * p.k * oh * ow;
  EMOTUNE_GRID_STRIDE(idx, total) {
    const int ox = (int)(idx % ow), oy = (int)((idx / ow) % oh);
    const int k = (int)((idx / ((int64_t)oh * ow)) % p.k);
    const int64_t img = idx / ((int64_t)oh * ow * p.k);
    float acc = b ? b[k] : 0.0f;
    for (int c = 0; c < p.c; ++c)
      for (int r = 0; r < p.r; ++r) {
        const int hi = oy * p.stride_h - p.pad_h + r;
        if (hi < 0 || hi >= p.h) continue;
        for (int s = 0; s < p.s; ++s) {
          const int wi = ox * p.stride_w - p.pad_w + s;
          if (wi < 0 || wi >= p.w) continue;
          acc = fmaf(x[((img * p.c + c) * p.h + hi) * p.w + wi],
                     w[(((int64_t)k * p.c + c) * p.r + r) * p.s + s], acc);
        }
      }
    y[idx] = acc;
  }
}

__global__ void backward_input_naive_kernel(Conv2dShape p, int oh, int ow, const float* __restrict__ dy,
                                            const float* __restrict__ w, float* __restrict__ dx) {
  const int64_t total = (int64_t)p.n * p.c * p.h * p.w;
  EMOTUNE_GRID_STRIDE(idx, total) {
    const int wi = (int)(idx % p.w), hi = (int)((idx / p.w) % p.h);
    const int c = (int)((idx / ((int64_t)p.h * p.w)) % p.c);
    const int64_t img = idx / ((int64_t)p.h * p.w * p.c);
    float acc = 0.0f;
    for (int k = 0; k < p.k; ++k)
      for (int r = 0; r < p.r; ++r) {
        const int th = hi + p.pad_h - r;
        if (th < 0 || th % p.stride_h != 0 || th / p.stride_h >= oh) continue;
        for (int s = 0; s < p.s; ++s) {
          const int tw = wi + p.pad_w - s;
          if (tw < 0 || tw % p.stride_w != 0 || tw / p.stride_w >= ow) continue;
          acc = fmaf(dy[((img * p.k + k) * oh + th / p.stride_h) * ow + tw / p.stride_w],
                     w[(((int64_t)k * p.c + c) * p.r + r) * p.s + s], acc);
        }
      }
    dx[idx] = acc;
  }
}

__global__ void backward_weight_naive_kernel(Conv2dShape p, int oh, int ow, const float* __restrict__ x,
                                             const float* __restrict__ dy, float* __restrict__ dw) {
  const int64_t total = (int64_t)p.k * p.c * p.r * p.s;
  EMOTUNE_GRID_STRIDE(idx, total) {
    const int s = (int)(idx % p.s), r = (int)((idx / p.s) % p.r);
    const int c = (int)((idx / ((int64_t)p.r * p.s)) % p.c);
    const int k = (int)(idx / ((int64_t)p.r * p.s * p.c));
    float acc = 0.0f;
    for (int64_t img = 0; img < p.n; ++img)
      for (int oy = 0; oy < oh; ++oy) {
        const int hi = oy * p.stride_h - p.pad_h + r;
        if (hi < 0 || hi >= p.h) continue;
        for (int ox = 0; ox < ow; ++ox) {
          const int wi = ox * p.stride_w - p.pad_w + s;
          if (wi < 0 || wi >= p.w) continue;
          acc = fmaf(dy[((img * p.k + k) * oh + oy) * ow + ox], x[((img * p.c + c) * p.h + hi) * p.w + wi], acc);
        }
      }
    dw[idx] = acc;
  }
}

__global__ void bias_grad_kernel(Conv2dShape p, int64_t ohw, const float* __restrict__ dy, float* __restrict__ db) {
  __shared__ double red[32];
  const int k = blockIdx.x;
  double s = 0;
  for (int64_t img = 0; img < p.n; ++img) {
    const float* g = dy + (img * p.k + k) * ohw;
    for (int64_t i = threadIdx.x; i < ohw; i += blockDim.x) s += g[i];
  }
  s = block_reduce_sum(s, red);
  if (threadIdx.x == 0) db[k] = (float)s;
}

__global__ void reduce_splits_kernel(int64_t count, int splits, const float* __restrict__ partial,
                                     float* __restrict__ dw) {
  EMOTUNE_GRID_STRIDE(i, count) {
    float s = 0.0f;
    for (int z = 0; z < splits; ++z) s += partial[z * count + i];
    dw[i] = s;
  }
}

}  // namespace

void forward_direct(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  const int crs = p.c * p.r * p.s;
  const int total = p.n * p.out_h() * p.out_w();
  const unsigned bx = std::min<unsigned>(ceil_div(total, kThreads), (unsigned)cuda_sm_count() * 8);
  const dim3 grid(bx, ceil_div(p.k, kDirectKChunk));
  const size_t smem = (size_t)kDirectKChunk * crs * sizeof(float);
  if (crs <= 9)
    forward_direct_kernel<9><<<grid, kThreads, smem, cuda_stream()>>>(p, p.out_h(), p.out_w(), x, w, b, y);
  else
    forward_direct_kernel<kDirectMaxTaps><<<grid, kThreads, smem, cuda_stream()>>>(p, p.out_h(), p.out_w(), x, w, b, y);
  EMOTUNE_LAUNCH_CHECK();
}

void backward_input_direct(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  const int total = p.n * p.c * p.h * p.w;
  const unsigned blocks = std::min<unsigned>(ceil_div(total, kThreads), (unsigned)cuda_sm_count() * 8);
  const size_t smem = (size_t)p.w_size() * sizeof(float);
  backward_input_direct_kernel<<<blocks, kThreads, smem, cuda_stream()>>>(p, p.out_h(), p.out_w(), dy, w, dx);
  EMOTUNE_LAUNCH_CHECK();
}

void backward_weight_direct(const Conv2dShape& p, const float* x, const float* dy, int splits, int chunk,
                            float* partial) {
  const dim3 grid(p.k, splits);
  if (p.c * p.r * p.s <= 9)
    backward_weight_direct_kernel<9><<<grid, kThreads, 0, cuda_stream()>>>(p, p.out_h(), p.out_w(), chunk, x, dy, partial);
  else
    backward_weight_direct_kernel<kDirectMaxTaps><<<grid, kThreads, 0, cuda_stream()>>>(p, p.out_h(), p.out_w(), chunk,
                                                                                          x, dy, partial);
  EMOTUNE_LAUNCH_CHECK();
}

void forward_naive(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  forward_naive_kernel<<<grid_for(p.y_size(), kThreads), kThreads, 0, cuda_stream()>>>(p, p.out_h(), p.out_w(), x,
                                                                                       w, b, y);
  EMOTUNE_LAUNCH_CHECK();
}

void backward_input_naive(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  backward_input_naive_kernel<<<grid_for(p.x_size(), kThreads), kThreads, 0, cuda_stream()>>>(
      p, p.out_h(), p.out_w(), dy, w, dx);
  EMOTUNE_LAUNCH_CHECK();
}

void backward_weight_naive(const Conv2dShape& p, const float* x, const float* dy, float* dw) {
  backward_weight_naive_kernel<<<grid_for(p.w_size(), kThreads), kThreads, 0, cuda_stream()>>>(
      p, p.out_h(), p.out_w(), x, dy, dw);
  EMOTUNE_LAUNCH_CHECK();
}

void bias_grad(const Conv2dShape& p, const float* dy, float* db) {
  bias_grad_kernel<<<p.k, kThreads, 0, cuda_stream()>>>(p, (int64_t)p.out_h() * p.out_w(), dy, db);
  EMOTUNE_LAUNCH_CHECK();
}

void reduce_splits(int64_t count, int splits, const float* partial, float* dw) {
  reduce_splits_kernel<<<grid_for(count, kThreads), kThreads, 0, cuda_stream()>>>(count, splits, partial, dw);
  EMOTUNE_LAUNCH_CHECK();
}

}  // namespace emotune::conv
