// conv2d on the CPU: the reference loops (conv2d_ref.h, instantiated for float) and the fast path,
// im2col + OpenBLAS sgemm (Caffe's scheme), on groups of images whose column matrices sit side by
// side (one image per group on the large early layers, several on the small late ones):
//   forward:         Y_g [K, G*OH*OW]   = W [K, CRS] * col_g [CRS, G*OH*OW] (+ b)
//   backward_input:  col_g [CRS, G*OH*OW] = W^T * dY_g, then col2im scatters it into each dx_n
//   backward_weight: dW += dY_g * col_g^T summed over the groups; db = sums of dY
// Threading: with at least as many images as threads, OpenMP splits the groups and each thread
// calls a single-threaded sgemm on its own group (OpenBLAS' own threads would fight OpenMP for
// the same cores); with fewer images (batch 1) the groups run in turn, each sgemm threaded only
// if OpenBLAS was given threads (set_cpu_threads leaves it one: kernels/runtime.h). Static
// scheduling and fixed reduction orders keep the results bit-identical for a given thread count.
#include "kernels/conv2d.h"

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "base/error.h"
#include "kernels/conv2d_infer.h"
#include "kernels/elementwise.h"
#include "kernels/runtime.h"
#include "kernels/cpu/conv2d_bf16_direct.h"
#include "kernels/cpu/gemm.h"
#include "kernels/cpu/conv2d_ref.h"
#include "kernels/cpu/conv2d_thin.h"
#include "kernels/cpu/scratch.h"

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

// Output columns ox whose input column ox*sw - pw + s lies inside the image: [*ox0, *ox1).
void valid_columns(const Conv2dShape& p, int s, int* ox0, int* ox1) {
  const int ow = p.out_w();
  int a = 0, b = ow;
  while (a < ow && a * p.stride_w - p.pad_w + s < 0) ++a;
  while (b > a && (b - 1) * p.stride_w - p.pad_w + s >= p.w) --b;
  *ox0 = a;
  *ox1 = b;
}

// col[(c*R + r)*S + s][oy*OW + ox] = x[c, oy*sh - ph + r, ox*sw - pw + s], zero outside the image.
// Rows of col are ld floats apart, so several images' columns can sit side by side.
void im2col(const Conv2dShape& p, const float* x, float* col, int64_t ld) {
  const int oh = p.out_h(), ow = p.out_w();
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s) {
        float* row = col + ((int64_t)(c * p.r + r) * p.s + s) * ld;
        const float* xc = x + (int64_t)c * p.h * p.w;
        int ox0, ox1;
        valid_columns(p, s, &ox0, &ox1);
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
void col2im(const Conv2dShape& p, const float* col, int64_t ld, float* dx) {
  const int oh = p.out_h(), ow = p.out_w();
  std::memset(dx, 0, sizeof(float) * (size_t)p.c * p.h * p.w);
  for (int c = 0; c < p.c; ++c)
    for (int r = 0; r < p.r; ++r)
      for (int s = 0; s < p.s; ++s) {
        const float* row = col + ((int64_t)(c * p.r + r) * p.s + s) * ld;
        float* dxc = dx + (int64_t)c * p.h * p.w;
        int ox0, ox1;
        valid_columns(p, s, &ox0, &ox1);
        for (int oy = 0; oy < oh; ++oy) {
          const int iy = oy * p.stride_h - p.pad_h + r;
          if (iy < 0 || iy >= p.h) continue;
          float* out = dxc + iy * p.w - p.pad_w + s;
          const float* in = row + oy * ow;
          for (int ox = ox0; ox < ox1; ++ox) out[ox * p.stride_w] += in[ox];
        }
      }
}

// Images go through sgemm in groups [n0, n1) whose column matrices sit side by side,
// [CRS, G*OH*OW]. The big early layers (OH*OW >= 512) take one image per group; the small late
// ones (11x11, 5x5) take several, because sgemm on one image's 121 or 25 columns spends most of
// its time packing and in edge kernels.
constexpr int kMinColumns = 512;

struct Plan {
  int groups = 0;
  bool parallel = false;  // groups split over OpenMP threads, each running a single-threaded sgemm
  int first(const Conv2dShape& p, int g) const { return (int)((int64_t)p.n * g / groups); }
};

Plan make_plan(const Conv2dShape& p) {
  Plan plan;
  if (p.n <= 0) return plan;
  const int hw = p.out_h() * p.out_w();
  const int per_group = std::max(1, (kMinColumns + hw - 1) / hw);
  const int threads = omp_get_max_threads();
  plan.groups = (p.n + per_group - 1) / per_group;
  // With at least as many images as threads, give every thread the same number of groups; with
  // fewer (batch 1 at inference), run the groups in turn, each sgemm on OpenBLAS's threads.
  // Below ~2 MFLOP (~10 us of one core) waking the other threads costs more than it saves.
  plan.parallel = threads >= 2 && p.n >= threads && p.flops() >= 2e6;
  if (plan.parallel) plan.groups = std::min(p.n, (plan.groups + threads - 1) / threads * threads);
  return plan;
}

// Runs body(g) for every group, in parallel when the plan says so. OpenBLAS' own threads would
// fight OpenMP's for the same cores, so it runs single-threaded inside the parallel region.
template <typename F>
void for_each_group(const Plan& plan, F body) {
  if (plan.parallel) {
    BlasSerialScope guard;
#pragma omp parallel for schedule(static)
    for (int g = 0; g < plan.groups; ++g) body(g);
  } else {
    for (int g = 0; g < plan.groups; ++g) body(g);
  }
}

// dyg[k, j*HW + i] = dy[n0 + j, k, i]: a group's output gradients as one [K, G*HW] matrix.
void gather_dy(const Conv2dShape& p, const float* dy, int n0, int n1, float* dyg) {
  const int64_t hw = p.out_h() * p.out_w(), cols = (n1 - n0) * hw;
  for (int j = 0; j < n1 - n0; ++j)
    for (int k = 0; k < p.k; ++k)
      std::memcpy(dyg + k * cols + j * hw, dy + ((int64_t)(n0 + j) * p.k + k) * hw, sizeof(float) * hw);
}

// The column matrix of images [n0, n1): x itself for one pointwise image, else im2col.
const float* group_columns(const Conv2dShape& p, const float* x, int n0, int n1) {
  const int64_t hw = p.out_h() * p.out_w(), cols = (n1 - n0) * hw, xs = (int64_t)p.c * p.h * p.w;
  if (n1 - n0 == 1 && is_pointwise(p)) return x + n0 * xs;
  float* col = thread_scratch(Scratch::columns, (int64_t)p.c * p.r * p.s * cols);
  for (int j = 0; j < n1 - n0; ++j) im2col(p, x + (n0 + j) * xs, col + j * hw, cols);
  return col;
}

// Y_g [K, G*HW] = W [K, CRS] * col_g, then each image's block (plus the bias) to y.
void forward_group(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y, int n0, int n1) {
  const int64_t hw = p.out_h() * p.out_w(), cols = (n1 - n0) * hw;
  const int crs = p.c * p.r * p.s;
  const float* col = group_columns(p, x, n0, n1);
  // One image writes straight into y (the bias preloaded, sgemm adding to it); a group needs a
  // staging matrix, as its columns interleave images.
  const bool direct = n1 - n0 == 1;
  float* out = direct ? y + (int64_t)n0 * p.k * hw : thread_scratch(Scratch::staging, p.k * cols);
  float beta = 0.0f;
  if (direct && b) {
    for (int k = 0; k < p.k; ++k)
      for (int64_t i = 0; i < hw; ++i) out[k * hw + i] = b[k];
    beta = 1.0f;
  }
  cpu_gemm(false, false, p.k, (int)cols, crs, w, crs, col, (int)cols, beta, out, (int)cols);
  if (direct) return;
  for (int j = 0; j < n1 - n0; ++j)
    for (int k = 0; k < p.k; ++k) {
      const float* src = out + k * cols + j * hw;
      float* dst = y + ((int64_t)(n0 + j) * p.k + k) * hw;
      const float bias = b ? b[k] : 0.0f;
      for (int64_t i = 0; i < hw; ++i) dst[i] = src[i] + bias;
    }
}

// col_g [CRS, G*HW] = W^T * dY_g, then col2im into each image's dx.
void backward_input_group(const Conv2dShape& p, const float* dy, const float* w, float* dx, int n0, int n1) {
  const int64_t hw = p.out_h() * p.out_w(), cols = (n1 - n0) * hw, xs = (int64_t)p.c * p.h * p.w;
  const int crs = p.c * p.r * p.s;
  const float* dyg = dy + (int64_t)n0 * p.k * hw;
  if (n1 - n0 > 1) {
    float* buf = thread_scratch(Scratch::staging, p.k * cols);
    gather_dy(p, dy, n0, n1, buf);
    dyg = buf;
  }
  if (n1 - n0 == 1 && is_pointwise(p)) {  // col2im of one pointwise image is the identity
    cpu_gemm(true, false, crs, (int)cols, p.k, w, crs, dyg, (int)cols, 0.0f, dx + n0 * xs, (int)cols);
    return;
  }
  float* col = thread_scratch(Scratch::columns, crs * cols);
  cpu_gemm(true, false, crs, (int)cols, p.k, w, crs, dyg, (int)cols, 0.0f, col, (int)cols);
  for (int j = 0; j < n1 - n0; ++j) col2im(p, col + j * hw, cols, dx + (n0 + j) * xs);
}

// dw = beta * dw + dY_g [K, G*HW] * col_g^T.
void backward_weight_group(const Conv2dShape& p, const float* x, const float* dy, float beta, float* dw, int n0,
                           int n1) {
  const int64_t hw = p.out_h() * p.out_w(), cols = (n1 - n0) * hw;
  const int crs = p.c * p.r * p.s;
  const float* col = group_columns(p, x, n0, n1);
  const float* dyg = dy + (int64_t)n0 * p.k * hw;
  if (n1 - n0 > 1) {
    float* buf = thread_scratch(Scratch::staging, p.k * cols);
    gather_dy(p, dy, n0, n1, buf);
    dyg = buf;
  }
  cpu_gemm(false, true, p.k, crs, (int)cols, dyg, (int)cols, col, (int)cols, beta, dw, crs);
}

// db[k] = the sum of dy over the batch and the plane (nothing when db is null).
void backward_bias(const Conv2dShape& p, const float* dy, float* db) {
  if (!db) return;
  const int64_t hw = p.out_h() * p.out_w();
#pragma omp parallel for schedule(static) if ((int64_t)p.n * p.k * hw > 65536)
  for (int k = 0; k < p.k; ++k) {
    double sum = 0;  // a long sum (N*OH*OW terms): double keeps it close to the exact value
    for (int n = 0; n < p.n; ++n) {
      const float* dyk = dy + ((int64_t)n * p.k + k) * hw;
#pragma omp simd reduction(+ : sum)
      for (int64_t i = 0; i < hw; ++i) sum += dyk[i];
    }
    db[k] = (float)sum;
  }
}

}  // namespace

void conv2d_forward_im2col_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  const Plan plan = make_plan(p);
  for_each_group(plan, [&](int g) { forward_group(p, x, w, b, y, plan.first(p, g), plan.first(p, g + 1)); });
}

void conv2d_backward_input_im2col_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  const Plan plan = make_plan(p);
  for_each_group(plan, [&](int g) { backward_input_group(p, dy, w, dx, plan.first(p, g), plan.first(p, g + 1)); });
}

namespace {

// Training's three products go through Winograd (kernels/conv2d_infer.h, no epilogue) for 3x3
// stride-1 convolutions with at least kWinogradTrainMinChannels channels in and out: forward,
// backward-input (as the conv of dy with the turned, channel-swapped filters) and backward-weight
// (conv2d_backward_weight_winograd_cpu). The filters change every step, so they are transformed
// on each call (about 1% of the products at batch 16). EMOTUNE_TRAIN_CONV=im2col keeps im2col +
// sgemm everywhere, for comparisons (kernels/runtime.h, TrainConvMode).
constexpr int kWinogradTrainMinChannels = 16;

// Transforming the filters costs about 40 operations per 3x3 filter against 32 multiply-adds per
// filter and 2x2 output tile in the products: below 64 tiles in the batch (a late layer at batch
// 1, when the autograd graph runs inference) im2col is cheaper.
bool enough_tiles(const Conv2dShape& p) {
  return (int64_t)p.n * ((p.out_h() + 1) / 2) * ((p.out_w() + 1) / 2) >= 64;
}

// The Winograd tile for a training product, 0 for im2col (fewer than 16 channels on either side:
// the first layer, whose one input channel would leave the GEMMs one row or one term).
// Forward: F(2x2), whose rounding is at im2col's level. The activations decide which side of
// each ReLU's kink and which element of each pooling window a value falls on, and F(4x4)'s larger
// rounding flipped ~30x more of those near-tie decisions against Keras (tests/oracle: 3,300-7,500
// per 10-step run with F(4x4) forward, 75-320 with F(2x2); the oracle allows 2,000).
// Backward-input and backward-weight: F(4x4) where the inference graph's cost estimate prefers it
// (the large early layers), F(2x2) on the small late ones, where F(4x4)'s tiles would overhang a
// 5x5 or 6x6 output by half; gradients with F(4x4)'s rounding agree with Keras' to ~1e-5 of their
// scale (the oracle's tolerance is 2e-4).
int train_tile(const Conv2dShape& p, bool forward = false) {
  const TrainConvMode mode = train_conv_mode();
  if (mode == TrainConvMode::im2col || !winograd_supported(p) || std::min(p.c, p.k) < kWinogradTrainMinChannels ||
      !enough_tiles(p))
    return 0;
  if (mode == TrainConvMode::winograd2) return 2;
  if (mode == TrainConvMode::winograd4) return 4;
  if (forward) return 2;
  // In bf16 the products' operands are rounded to 8 bits: F(4x4)'s transforms amplify that
  // rounding up to 256x against the direct sum (tests/test_conv2d_infer.cpp), F(2x2)'s up to 2 per
  // axis over the neighbouring taps' sums, so bf16 keeps to F(2x2) (tests/test_precision.cpp
  // bounds it; docs/precision.md).
  if (cpu_precision() == Precision::bf16) return 2;
  return winograd_cost(p, false, 4) < winograd_cost(p, false, 2) ? 4 : 2;
}

}  // namespace

namespace {

// At stride 1, dx is the "full" correlation of dy with the filters turned 180 degrees and their
// channel axes swapped: a stride-1 conv q of dy [N, K, OH, OW] with w' [C, K, R, S], w'[c,k,r,s] =
// w[k,c,R-1-r,S-1-s], padding R-1-pad, which gives back [N, C, H, W]. Its shape; `ok` false
// where dx is not such a conv (stride, or padding beyond the filter).
struct AsForward {
  Conv2dShape q;
  bool ok;
};
AsForward backward_input_as_forward(const Conv2dShape& p) {
  const Conv2dShape q{p.n, p.k, p.out_h(), p.out_w(), p.c, p.r, p.s, p.r - 1 - p.pad_h, p.s - 1 - p.pad_w, 1, 1};
  return {q, p.stride_h == 1 && p.stride_w == 1 && q.pad_h >= 0 && q.pad_w >= 0 && q.out_h() == p.h &&
                 q.out_w() == p.w};
}

// The forms of the three products (conv2d_cpu_forms): a Winograd tile (2 or 4), kDirect (bf16),
// kThin (fp32, few input terms: kernels/cpu/conv2d_thin.h), or 0 for im2col.
constexpr int kDirect = -1;
constexpr int kThin = -2;
struct Forms {
  int forward, backward_input, backward_weight;
};
// The direct forms only where the mode is auto: EMOTUNE_TRAIN_CONV names the form it asks for. The
// thin fp32 form takes the first layer's forward (in bf16 too: its nine-term sums stay fp32) and
// its backward-weight where the bf16 form does not.
Forms train_forms(const Conv2dShape& p) {
  const AsForward bi = backward_input_as_forward(p);
  const bool any = train_conv_mode() == TrainConvMode::auto_;
  Forms f;
  f.forward = any && conv2d_bf16_direct_applies(p) ? kDirect
              : any && conv2d_thin_applies(p)      ? kThin
                                                   : train_tile(p, /*forward=*/true);
  f.backward_input = !bi.ok                                     ? 0
                     : any && conv2d_bf16_direct_applies(bi.q) ? kDirect
                     : p.pad_h <= 2 && p.pad_w <= 2            ? train_tile(p)
                                                               : 0;
  f.backward_weight = any && conv2d_bf16_direct_weight_applies(p) ? kDirect
                      : any && conv2d_thin_applies(p)             ? kThin
                                                                  : train_tile(p);
  return f;
}

const char* form_name(int form) {
  return form == kDirect ? "direct-bf16"
         : form == kThin ? "direct-fp32"
         : form == 2     ? "winograd2"
         : form == 4     ? "winograd4"
                         : "im2col";
}

// Training's forward, with the ReLU in Winograd's output transform when asked (im2col: after it).
void forward_train(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu, float* y) {
  const int form = train_forms(p).forward;
  if (form == kDirect) {  // bf16: direct, no transforms
    if (!conv2d_forward_bf16_direct(p, x, w, b, relu, y)) throw Error("conv2d: the direct bf16 form refused its shape");
    return;
  }
  if (form == kThin) {  // fp32, direct, the ReLU as rows are stored
    conv2d_thin_forward(p, x, w, b, relu, nullptr, nullptr, y);
    return;
  }
  if (const int tile = form) {
    float* u = thread_scratch(Scratch::train_filters, winograd_weights_size(p, tile));
    winograd_weights(p, w, u, tile);
    ConvEpilogue e;
    e.relu = relu;
    conv2d_infer_winograd_cpu(p, x, u, b, e, y, tile);
    return;
  }
  conv2d_forward_im2col_cpu(p, x, w, b, y);
  if (relu) relu_forward_cpu(p.y_size(), y, y);
}

}  // namespace

void conv2d_forward_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  forward_train(p, x, w, b, /*relu=*/false, y);
}

void conv2d_forward_relu_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  forward_train(p, x, w, b, /*relu=*/true, y);
}

Conv2dCpuForms conv2d_cpu_forms(const Conv2dShape& p) {
  const Forms f = train_forms(p);
  return {form_name(f.forward), form_name(f.backward_input), form_name(f.backward_weight)};
}

// dx as a forward of dy (backward_input_as_forward) where it can be one.
void conv2d_backward_input_cpu(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  const Conv2dShape q = backward_input_as_forward(p).q;
  const int form = train_forms(p).backward_input;
  if (form == kDirect) {  // bf16: direct
    std::vector<float> turned((size_t)p.w_size());  // w'[c, k, r, s] = w[k, c, R-1-r, S-1-s]
#pragma omp parallel for schedule(static) if (p.w_size() > (1 << 16) && !omp_in_parallel())
    for (int k = 0; k < p.k; ++k)
      for (int c = 0; c < p.c; ++c)
        for (int r = 0; r < p.r; ++r)
          for (int s = 0; s < p.s; ++s)
            turned[(((size_t)c * p.k + k) * p.r + r) * p.s + s] =
                w[(((size_t)k * p.c + c) * p.r + (p.r - 1 - r)) * p.s + (p.s - 1 - s)];
    if (!conv2d_forward_bf16_direct(q, dy, turned.data(), nullptr, false, dx))
      throw Error("conv2d: the direct bf16 form refused its shape");
    return;
  }
  if (const int tile = form) {  // 3x3: Winograd
    float* u = thread_scratch(Scratch::train_filters, winograd_weights_size(q, tile));
    winograd_weights(p, w, u, tile, /*turned=*/true);
    conv2d_infer_winograd_cpu(q, dy, u, nullptr, ConvEpilogue{}, dx, tile);
    return;
  }
  conv2d_backward_input_im2col_cpu(p, dy, w, dx);
}

void conv2d_backward_weight_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db) {
  const int form = train_forms(p).backward_weight;
  if (form == kDirect) {  // bf16: direct (AMX tiles or VDPBF16PS)
    if (!conv2d_backward_weight_bf16_direct(p, x, dy, dw, db))
      throw Error("conv2d: the direct bf16 form refused its shape");
    return;
  }
  if (form == kThin) {  // fp32, direct
    conv2d_thin_backward_weight(p, x, dy, dw, db);
    return;
  }
  if (const int tile = form) {
    conv2d_backward_weight_winograd_cpu(p, x, dy, dw, tile);
    backward_bias(p, dy, db);
    return;
  }
  const int64_t wsz = p.w_size();
  const Plan plan = make_plan(p);
  // Each worker sums its own contiguous run of groups into a private dw (worker 0 straight into
  // dw), then the partials are added in worker order: a fixed order, so the result does not
  // depend on timing.
  const int workers = plan.parallel ? std::min(omp_get_max_threads(), plan.groups) : 1;
  std::vector<float> partial((size_t)(workers - 1) * wsz);
  Plan by_worker = plan;
  by_worker.groups = workers;
  for_each_group(by_worker, [&](int t) {  // a loop over workers, not thread ids: all run even with fewer threads
    float* acc = t == 0 ? dw : partial.data() + (size_t)(t - 1) * wsz;
    const int g0 = (int)((int64_t)plan.groups * t / workers), g1 = (int)((int64_t)plan.groups * (t + 1) / workers);
    for (int g = g0; g < g1; ++g)
      backward_weight_group(p, x, dy, g == g0 ? 0.0f : 1.0f, acc, plan.first(p, g), plan.first(p, g + 1));
  });
  for (int t = 1; t < workers; ++t) {
    const float* src = partial.data() + (size_t)(t - 1) * wsz;
    for (int64_t i = 0; i < wsz; ++i) dw[i] += src[i];
  }
  if (plan.groups == 0) std::memset(dw, 0, sizeof(float) * wsz);
  backward_bias(p, dy, db);
}

}  // namespace emotune
