// conv2d on the CPU: the reference loops (conv2d_ref.h, instantiated for float) and the fast path,
// im2col + OpenBLAS sgemm per image (Caffe's scheme):
//   forward:         Y_n [K, OH*OW]  = W [K, CRS] * col(x_n) [CRS, OH*OW] (+ b)
//   backward_input:  col [CRS, OH*OW] = W^T * dY_n, then col2im scatters it into dx_n
//   backward_weight: dW += dY_n * col(x_n)^T summed over the batch; db = sums of dY
// Threading: with at least as many images as threads, OpenMP splits the batch and each thread
// calls a single-threaded sgemm on its own image (OpenBLAS' own threads would fight OpenMP for the
// same cores); with fewer images (inference, batch 1) the images run in turn and OpenBLAS threads
// each sgemm. Static scheduling keeps the results bit-identical for a fixed thread count.
#include "kernels/conv2d.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/cpu/blas_threads.h"
#include "kernels/cpu/conv2d_ref.h"

namespace emotune {

void conv2d_forward_ref_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  conv2d_forward_ref<float>(p, x, w, b, y);
}
void conv2d_backward_input_ref_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  conv2d_backward_input_ref<float>(p, dy, w, dx);
}
void conv2d_backward_weight_ref_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw,
                                    float* db) {
  conv2d_backward_weight_ref<float>(p, x, dy, dw, db);
}

namespace {

// A 1x1, stride-1, unpadded conv reads x_n itself as its column matrix: no copy needed.
bool is_pointwise(const Conv2dShape& p) {
  return p.r == 1 && p.s == 1 && p.stride_h == 1 && p.stride_w == 1 && p.pad_h == 0 && p.pad_w == 0;
}

// col[(c*R + r)*S + s][oy*OW + ox] = x[c, oy*sh - ph + r, ox*sw - pw + s], zero outside the image.
void im2col(const Conv2dShape& p, const float* x, float* col) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s) {
        float* row = col + ((int64_t)(c * p.r + r) * p.s + s) * oh * ow;
        const float* xc = x + (int64_t)c * p.h * p.w;
        // Output columns whose input column lies inside the image: [ox0, ox1).
        int ox0 = 0, ox1 = ow;
        while (ox0 < ow && ox0 * p.stride_w - p.pad_w + s < 0) ++ox0;
        while (ox1 > ox0 && (ox1 - 1) * p.stride_w - p.pad_w + s >= p.w) --ox1;
        for (int oy = 0; oy < oh; ++oy) {
          float* out = row + oy * ow;
          const int iy = oy * p.stride_h - p.pad_h + r;
          if (iy < 0 || iy >= p.h) {
            std::memset(out, 0, sizeof(float) * ow);
            continue;
          }
          const float* in = xc + iy * p.w;
          for (int ox = 0; ox < ox0; ++ox) out[ox] = 0.0f;
          if (p.stride_w == 1) {
            std::memcpy(out + ox0, in + ox0 - p.pad_w + s, sizeof(float) * (ox1 - ox0));
          } else {
            for (int ox = ox0; ox < ox1; ++ox) out[ox] = in[ox * p.stride_w - p.pad_w + s];
          }
          for (int ox = ox1; ox < ow; ++ox) out[ox] = 0.0f;
        }
      }
}

// The adjoint of im2col: dx[c, iy, ix] = sum of the col entries that read it (dx overwritten).
void col2im(const Conv2dShape& p, const float* col, float* dx) {
  const int oh = p.out_h(), ow = p.out_w();
  std::memset(dx, 0, sizeof(float) * (size_t)p.c * p.h * p.w);
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s) {
        const float* row = col + ((int64_t)(c * p.r + r) * p.s + s) * oh * ow;
        float* dxc = dx + (int64_t)c * p.h * p.w;
        int ox0 = 0, ox1 = ow;
        while (ox0 < ow && ox0 * p.stride_w - p.pad_w + s < 0) ++ox0;
        while (ox1 > ox0 && (ox1 - 1) * p.stride_w - p.pad_w + s >= p.w) --ox1;
        for (int oy = 0; oy < oh; ++oy) {
          const int iy = oy * p.stride_h - p.pad_h + r;
          if (iy < 0 || iy >= p.h) continue;
          float* out = dxc + iy * p.w - p.pad_w + s;
          const float* in = row + oy * ow;
          for (int ox = ox0; ox < ox1; ++ox) out[ox * p.stride_w] += in[ox];
        }
      }
}

// Per-thread scratch that survives between calls: a training step would otherwise map and fault
// in a fresh multi-megabyte column buffer for every layer and every image.
float* scratch(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}

int64_t col_size(const Conv2dShape& p) { return (int64_t)p.c * p.r * p.s * p.out_h() * p.out_w(); }

// One image of the forward pass; the sgemm uses whatever thread count the caller set.
void forward_image(const Conv2dShape& p, const float* xn, const float* w, const float* b, float* yn) {
  const int m = p.k, n = p.out_h() * p.out_w(), kk = p.c * p.r * p.s;
  const float* col = xn;
  if (!is_pointwise(p)) {
    float* buf = scratch(col_size(p));
    im2col(p, xn, buf);
    col = buf;
  }
  float beta = 0.0f;
  if (b) {  // preload the bias so that sgemm adds the products to it (beta = 1)
    for (int k = 0; k < m; ++k)
      for (int i = 0; i < n; ++i) yn[(int64_t)k * n + i] = b[k];
    beta = 1.0f;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, kk, 1.0f, w, kk, col, n, beta, yn, n);
}

void backward_input_image(const Conv2dShape& p, const float* dyn, const float* w, float* dxn) {
  const int m = p.c * p.r * p.s, n = p.out_h() * p.out_w(), kk = p.k;
  if (is_pointwise(p)) {  // col2im of a pointwise conv is the identity: write dx_n directly
    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, kk, 1.0f, w, m, dyn, n, 0.0f, dxn, n);
    return;
  }
  float* col = scratch(col_size(p));
  cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, n, kk, 1.0f, w, m, dyn, n, 0.0f, col, n);
  col2im(p, col, dxn);
}

// dw (+)= dY_n * col(x_n)^T; beta 0 for the first image of a partial sum, 1 after.
void backward_weight_image(const Conv2dShape& p, const float* xn, const float* dyn, float beta, float* dw) {
  const int m = p.k, n = p.c * p.r * p.s, kk = p.out_h() * p.out_w();
  const float* col = xn;
  if (!is_pointwise(p)) {
    float* buf = scratch(col_size(p));
    im2col(p, xn, buf);
    col = buf;
  }
  cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, m, n, kk, 1.0f, dyn, kk, col, kk, beta, dw, n);
}

// Split the batch over OpenMP threads only when every thread gets an image.
bool batch_parallel(const Conv2dShape& p) { return p.n >= 2 && omp_get_max_threads() >= 2; }

}  // namespace

void conv2d_forward_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  const int64_t xs = (int64_t)p.c * p.h * p.w, ys = (int64_t)p.k * p.out_h() * p.out_w();
  if (batch_parallel(p)) {
    BlasSingleThread guard;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < p.n; ++n) forward_image(p, x + n * xs, w, b, y + n * ys);
  } else {
    for (int n = 0; n < p.n; ++n) forward_image(p, x + n * xs, w, b, y + n * ys);
  }
}

void conv2d_backward_input_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  const int64_t xs = (int64_t)p.c * p.h * p.w, ys = (int64_t)p.k * p.out_h() * p.out_w();
  if (batch_parallel(p)) {
    BlasSingleThread guard;
#pragma omp parallel for schedule(static)
    for (int n = 0; n < p.n; ++n) backward_input_image(p, dy + n * ys, w, dx + n * xs);
  } else {
    for (int n = 0; n < p.n; ++n) backward_input_image(p, dy + n * ys, w, dx + n * xs);
  }
}

void conv2d_backward_weight_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw,
                                float* db) {
  const int64_t xs = (int64_t)p.c * p.h * p.w, ys = (int64_t)p.k * p.out_h() * p.out_w();
  const int64_t wsz = p.w_size();
  const int hw = p.out_h() * p.out_w();
  if (batch_parallel(p)) {
    // Each thread sums its own contiguous slice of the batch into a private dw, then the partials
    // are added in thread order: a fixed order, so the result does not depend on timing.
    const int nt = std::min(omp_get_max_threads(), p.n);
    std::vector<float> partial((size_t)(nt - 1) * wsz);
    BlasSingleThread guard;
#pragma omp parallel for schedule(static) num_threads(nt)
    for (int t = 0; t < nt; ++t) {  // a loop, not thread ids: every slice runs even with fewer threads
      const int lo = (int)((int64_t)p.n * t / nt), hi = (int)((int64_t)p.n * (t + 1) / nt);
      float* acc = t == 0 ? dw : partial.data() + (size_t)(t - 1) * wsz;
      for (int n = lo; n < hi; ++n) backward_weight_image(p, x + n * xs, dy + n * ys, n == lo ? 0.0f : 1.0f, acc);
    }
    for (int t = 1; t < nt; ++t) {
      const float* src = partial.data() + (size_t)(t - 1) * wsz;
      for (int64_t i = 0; i < wsz; ++i) dw[i] += src[i];
    }
  } else {
    for (int n = 0; n < p.n; ++n) backward_weight_image(p, x + n * xs, dy + n * ys, n == 0 ? 0.0f : 1.0f, dw);
  }
  if (p.n == 0) std::memset(dw, 0, sizeof(float) * wsz);
  if (db) {
    for (int k = 0; k < p.k; ++k) {
      double sum = 0;  // a long sum (N*OH*OW terms): double keeps it close to the exact value
      for (int n = 0; n < p.n; ++n) {
        const float* dyk = dy + n * ys + (int64_t)k * hw;
        for (int i = 0; i < hw; ++i) sum += dyk[i];
      }
      db[k] = (float)sum;
    }
  }
}

}  // namespace emotune
