// conv2d on the GPU: forward, backward_input and backward_weight. The fast path is the
// implicit GEMM of conv2d_igemm.cuh; this file instantiates its tiles, reorders the filter for it,
// splits the backward_weight reduction, picks an algorithm and a tile per shape, and checks
// shapes. See conv2d_cuda.h for the algorithms and their knobs.
#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <string>
#include <tuple>

#include "kernels/conv2d.h"
#include "kernels/elementwise.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/conv2d_cuda.h"
#include "kernels/cuda/conv2d_igemm.cuh"

namespace emotune {

namespace {

using conv::ConvDataParams;
using conv::ConvWgradParams;

// ---- tiles ------------------------------------------------------------------------------------
// All 256 threads. 128x128 with 8x8 microtiles is the classic SGEMM recipe (64 FFMA per
// 4 float4 shared loads); the smaller tiles keep the 132 SMs busy when M or N is small (late
// layers, and 64-channel layers whose N would leave half of a 128-wide tile empty).
using T128x128 = conv::Tile<128, 128, 8, 8, 8>;
using T128x64 = conv::Tile<128, 64, 8, 8, 4>;
using T64x128 = conv::Tile<64, 128, 8, 4, 8>;
using T64x64 = conv::Tile<64, 64, 8, 4, 4>;
// BK = 16: half the barriers per reduction step, twice the loads in flight per thread; which
// depth wins depends on the layer, so the tuner decides.
using T128x128k16 = conv::Tile<128, 128, 16, 8, 8>;
using T64x64k16 = conv::Tile<64, 64, 16, 4, 4>;
constexpr int kReductionAlign = 32;  // split chunks are a multiple of every tile's BK

template <class T, bool kBackward>
void launch_data(const ConvDataParams& p) {
  const dim3 grid(ceil_div(p.m, T::BM), ceil_div(p.oc, T::BN));
  conv::igemm_kernel<T, conv::DataIter<T, kBackward>><<<grid, T::THREADS, 0, cuda_stream()>>>(p);
  EMOTUNE_LAUNCH_CHECK();
}

template <class T>
void launch_wgrad(const ConvWgradParams& p, int splits) {
  static_assert(kReductionAlign % T::BK == 0, "split chunks must hold whole k-tiles");
  const dim3 grid(ceil_div(p.k, T::BM), ceil_div(p.crs, T::BN), splits);
  conv::igemm_kernel<T, conv::WgradIter<T>><<<grid, T::THREADS, 0, cuda_stream()>>>(p);
  EMOTUNE_LAUNCH_CHECK();
}

struct TileEntry {
  const char* name;
  int bm, bn;
  void (*forward)(const ConvDataParams&);
  void (*backward_input)(const ConvDataParams&);
  void (*backward_weight)(const ConvWgradParams&, int);
};

const TileEntry kTiles[] = {
    {"128x128", 128, 128, launch_data<T128x128, false>, launch_data<T128x128, true>, launch_wgrad<T128x128>},
    {"128x64", 128, 64, launch_data<T128x64, false>, launch_data<T128x64, true>, launch_wgrad<T128x64>},
    {"64x128", 64, 128, launch_data<T64x128, false>, launch_data<T64x128, true>, launch_wgrad<T64x128>},
    {"64x64", 64, 64, launch_data<T64x64, false>, launch_data<T64x64, true>, launch_wgrad<T64x64>},
    {"128x128/bk16", 128, 128, launch_data<T128x128k16, false>, launch_data<T128x128k16, true>,
     launch_wgrad<T128x128k16>},
    {"64x64/bk16", 64, 64, launch_data<T64x64k16, false>, launch_data<T64x64k16, true>, launch_wgrad<T64x64k16>},
};
constexpr int kTileCount = sizeof(kTiles) / sizeof(kTiles[0]);

// ---- helpers ----------------------------------------------------------------------------------
constexpr int64_t kIntMax = std::numeric_limits<int>::max();

// The igemm and direct kernels index with int; beyond that, only the naive kernels run.
bool fits_int(const Conv2dShape& p) {
  return p.x_size() < kIntMax && p.y_size() < kIntMax && p.w_size() < kIntMax &&
         (int64_t)p.n * p.out_h() * p.out_w() < kIntMax;
}

void check_shape(const Conv2dShape& p, const char* fn) {
  auto bad = [&](const char* what) {
    throw Error(std::string(fn) + ": " + what + " (n " + std::to_string(p.n) + ", c " + std::to_string(p.c) +
                ", h " + std::to_string(p.h) + ", w " + std::to_string(p.w) + ", k " + std::to_string(p.k) +
                ", filter " + std::to_string(p.r) + "x" + std::to_string(p.s) + ", pad " +
                std::to_string(p.pad_h) + "," + std::to_string(p.pad_w) + ", stride " +
                std::to_string(p.stride_h) + "," + std::to_string(p.stride_w) + ")");
  };
  if (p.n < 1 || p.c < 1 || p.h < 1 || p.w < 1 || p.k < 1 || p.r < 1 || p.s < 1) bad("every size must be >= 1");
  if (p.pad_h < 0 || p.pad_w < 0 || p.stride_h < 1 || p.stride_w < 1) bad("invalid padding or stride");
  if (p.h + 2 * p.pad_h < p.r || p.w + 2 * p.pad_w < p.s) bad("the filter is larger than the padded input");
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15) == 0; }

// wt[(rs * IC + ic) * OC + oc] = w[k, c, r, s], with (IC, OC) = (C, K) for forward and (K, C)
// for backward_input: a GEMM B-tile row (one tap, one reduction channel) becomes contiguous.
__global__ void reorder_filter_kernel(int k, int c, int rs, bool k_is_column, const float* __restrict__ w,
                                      float* __restrict__ wt) {
  const int64_t total = (int64_t)k * c * rs;
  EMOTUNE_GRID_STRIDE(i, total) {
    const int oc_n = k_is_column ? k : c, ic_n = k_is_column ? c : k;
    const int oc = (int)(i % oc_n);
    const int64_t t = i / oc_n;
    const int ic = (int)(t % ic_n), tap = (int)(t / ic_n);
    const int kk = k_is_column ? oc : ic, cc = k_is_column ? ic : oc;
    wt[i] = w[((int64_t)kk * c + cc) * rs + tap];
  }
}

void reorder_filter(const Conv2dShape& p, bool forward, const float* w, float* wt) {
  reorder_filter_kernel<<<grid_for(p.w_size(), 256), 256, 0, cuda_stream()>>>(p.k, p.c, p.r * p.s, forward, w, wt);
  EMOTUNE_LAUNCH_CHECK();
}

ConvDataParams data_params(const Conv2dShape& p, bool backward, const float* in, const float* wt,
                           const float* bias, float* out) {
  ConvDataParams d{};
  d.in = in;
  d.wt = wt;
  d.bias = bias;
  d.out = out;
  d.n = p.n;
  d.r = p.r;
  d.s = p.s;
  d.pad_h = p.pad_h;
  d.pad_w = p.pad_w;
  d.stride_h = p.stride_h;
  d.stride_w = p.stride_w;
  if (!backward) {
    d.ic = p.c, d.ih = p.h, d.iw = p.w;
    d.oc = p.k, d.oh = p.out_h(), d.ow = p.out_w();
  } else {
    d.ic = p.k, d.ih = p.out_h(), d.iw = p.out_w();
    d.oc = p.c, d.oh = p.h, d.ow = p.w;
  }
  d.ihw = d.ih * d.iw;
  d.ohw = d.oh * d.ow;
  d.m = p.n * d.ohw;
  d.vec_store = d.ohw % 4 == 0 && aligned16(out);
  return d;
}

// ---- backward_weight reduction splits --------------------------------------------------------
// Chosen from the shape, the algorithm and the SM count only, never from the tile, so that every
// tile gives the same sums: about four blocks per SM (counting 128x128 tiles for igemm, one block
// per output channel for direct), each split at least `min_chunk` reduction steps long, the
// partial buffer under 256 MB.
struct Splits {
  int count, chunk;
};

Splits wgrad_splits(const Conv2dShape& p, ConvAlgo algo, int forced) {
  const int64_t l = (int64_t)p.n * p.out_h() * p.out_w();
  const int64_t outputs = p.w_size();
  int64_t want;
  if (forced > 0) {
    want = forced;
  } else {
    const bool direct = algo == ConvAlgo::direct;
    const int64_t blocks = direct ? p.k : ceil_div<int64_t>(p.k, 128) * ceil_div<int64_t>((int64_t)p.c * p.r * p.s, 128);
    const int64_t min_chunk = direct ? 8192 : 256;  // direct: ~32 steps per thread between block reductions
    want = ceil_div<int64_t>(4 * cuda_sm_count(), blocks);
    want = std::min<int64_t>(want, std::max<int64_t>(1, l / min_chunk));
    want = std::min<int64_t>(want, std::max<int64_t>(1, (int64_t(256) << 20) / (outputs * 4)));
    want = std::min<int64_t>(want, 1024);
  }
  want = std::max<int64_t>(1, std::min(want, l));
  const int64_t chunk = ceil_div<int64_t>(ceil_div<int64_t>(l, want), kReductionAlign) * kReductionAlign;
  return Splits{(int)ceil_div<int64_t>(l, chunk), (int)chunk};
}

// ---- algorithm and tile choice ----------------------------------------------------------------
ConvAlgo resolve(ConvDir dir, const Conv2dShape& p, ConvAlgo asked) {
  if (asked != ConvAlgo::automatic) {
    if (!conv2d_cuda_supports(dir, asked, p))
      throw Error(std::string("conv2d cuda: the requested algorithm cannot run this shape (c ") +
                  std::to_string(p.c) + ", k " + std::to_string(p.k) + ", filter " + std::to_string(p.r) + "x" +
                  std::to_string(p.s) + ")");
    return asked;
  }
  if (!fits_int(p)) return ConvAlgo::naive;
  const int crs = p.c * p.r * p.s;
  switch (dir) {
    case ConvDir::forward:
    case ConvDir::backward_weight:
      return crs <= conv::kDirectMaxTaps ? ConvAlgo::direct : ConvAlgo::igemm;
    case ConvDir::backward_input:
      return p.c <= 4 && conv2d_cuda_supports(dir, ConvAlgo::direct, p) ? ConvAlgo::direct : ConvAlgo::igemm;
  }
  return ConvAlgo::igemm;
}

// Without tuning: the biggest tile that still gives two blocks per SM, skipping 128-wide
// columns when N <= 64 (half of such a tile would be padding).
int heuristic_tile(int64_t rows, int64_t cols, int64_t splits) {
  const int64_t target = 2 * (int64_t)cuda_sm_count();
  constexpr int kHeuristicTiles = 4;  // the BK = 8 tiles, largest first
  for (int i = 0; i < kHeuristicTiles; ++i) {
    if (kTiles[i].bn == 128 && cols <= 64) continue;
    if (kTiles[i].bm == 128 && rows <= 64) continue;
    if (ceil_div<int64_t>(rows, kTiles[i].bm) * ceil_div<int64_t>(cols, kTiles[i].bn) * splits >= target) return i;
  }
  return kHeuristicTiles - 1;
}

using TuneKey = std::tuple<int, int, int, int, int, int, int, int, int, int, int, int>;

TuneKey tune_key(ConvDir dir, const Conv2dShape& p) {
  return {(int)dir, p.n, p.c, p.h, p.w, p.k, p.r, p.s, p.pad_h, p.pad_w, p.stride_h, p.stride_w};
}

struct TuneCache {
  std::mutex mu;
  std::map<TuneKey, int> best;
};

TuneCache& tune_cache() {
  static TuneCache* c = new TuneCache();
  return *c;
}

// The tile for this shape: forced, cached, tuned now (every tile is run and timed once; each
// run writes the full, identical result, so the caller's output is valid whichever ran last),
// or the heuristic when EMOTUNE_CONV_TUNE=0 (kernels/runtime.h, CudaSettings::conv_tune).
template <class Run>
int choose_tile(ConvDir dir, const Conv2dShape& p, int forced, int heuristic, Run run) {
  if (forced >= 0) {
    if (forced >= kTileCount) throw Error("conv2d cuda: tile index " + std::to_string(forced) + " out of range");
    return forced;
  }
  if (!cuda_settings().conv_tune) return heuristic;
  const TuneKey key = tune_key(dir, p);
  TuneCache& cache = tune_cache();
  {
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.best.find(key);
    if (it != cache.best.end()) return it->second;
  }
  cudaEvent_t start, stop;
  EMOTUNE_CUDA_CHECK(cudaEventCreate(&start));
  EMOTUNE_CUDA_CHECK(cudaEventCreate(&stop));
  int best = heuristic;
  float best_ms = std::numeric_limits<float>::infinity();
  for (int i = 0; i < kTileCount; ++i) {
    run(i);  // warm-up: instruction cache, L2
    EMOTUNE_CUDA_CHECK(cudaEventRecord(start, cuda_stream()));
    for (int rep = 0; rep < 3; ++rep) run(i);
    EMOTUNE_CUDA_CHECK(cudaEventRecord(stop, cuda_stream()));
    EMOTUNE_CUDA_CHECK(cudaEventSynchronize(stop));
    float ms = 0;
    EMOTUNE_CUDA_CHECK(cudaEventElapsedTime(&ms, start, stop));
    if (ms < best_ms) best_ms = ms, best = i;
  }
  EMOTUNE_CUDA_CHECK(cudaEventDestroy(start));
  EMOTUNE_CUDA_CHECK(cudaEventDestroy(stop));
  std::lock_guard<std::mutex> lock(cache.mu);
  cache.best[key] = best;
  return best;
}

}  // namespace

// ---- public API -------------------------------------------------------------------------------

int conv2d_cuda_tile_count() { return kTileCount; }

const char* conv2d_cuda_tile_name(int tile) {
  return tile >= 0 && tile < kTileCount ? kTiles[tile].name : "?";
}

bool conv2d_cuda_supports(ConvDir dir, ConvAlgo algo, const Conv2dShape& p) {
  if (algo == ConvAlgo::automatic || algo == ConvAlgo::naive) return true;
  if (!fits_int(p)) return false;
  if (algo == ConvAlgo::igemm) return true;  // its partial buffer is indexed in 64 bits
  const int64_t crs = (int64_t)p.c * p.r * p.s;
  switch (dir) {
    case ConvDir::forward:
    case ConvDir::backward_weight:
      return crs <= conv::kDirectMaxTaps;
    case ConvDir::backward_input:
      return p.w_size() <= conv::kDirectMaxFilter;
  }
  return false;
}

std::string conv2d_cuda_describe(ConvDir dir, const Conv2dShape& p) {
  const ConvAlgo algo = resolve(dir, p, ConvAlgo::automatic);
  std::string s = algo == ConvAlgo::naive ? "naive" : algo == ConvAlgo::direct ? "direct" : "igemm";
  if (algo == ConvAlgo::igemm) {
    TuneCache& cache = tune_cache();
    std::lock_guard<std::mutex> lock(cache.mu);
    auto it = cache.best.find(tune_key(dir, p));
    s += it != cache.best.end() ? std::string(" ") + kTiles[it->second].name : " (not tuned yet)";
  }
  if (dir == ConvDir::backward_weight && algo != ConvAlgo::naive)
    s += " splits=" + std::to_string(wgrad_splits(p, algo, 0).count);
  return s;
}

void conv2d_forward_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* x, const float* w,
                              const float* b, float* y) {
  check_shape(p, "conv2d_forward_cuda");
  switch (resolve(ConvDir::forward, p, o.algo)) {
    case ConvAlgo::naive:
      return conv::forward_naive(p, x, w, b, y);
    case ConvAlgo::direct:
      return conv::forward_direct(p, x, w, b, y);
    default:
      break;
  }
  DeviceScratch<float> wt(p.w_size());
  reorder_filter(p, /*forward=*/true, w, wt.ptr);
  const ConvDataParams d = data_params(p, false, x, wt.ptr, b, y);
  auto run = [&](int tile) { kTiles[tile].forward(d); };
  const int tile = choose_tile(ConvDir::forward, p, o.tile, heuristic_tile(d.m, d.oc, 1), run);
  run(tile);
}

void conv2d_backward_input_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* dy,
                                     const float* w, float* dx) {
  check_shape(p, "conv2d_backward_input_cuda");
  switch (resolve(ConvDir::backward_input, p, o.algo)) {
    case ConvAlgo::naive:
      return conv::backward_input_naive(p, dy, w, dx);
    case ConvAlgo::direct:
      return conv::backward_input_direct(p, dy, w, dx);
    default:
      break;
  }
  DeviceScratch<float> wt(p.w_size());
  reorder_filter(p, /*forward=*/false, w, wt.ptr);
  const ConvDataParams d = data_params(p, true, dy, wt.ptr, nullptr, dx);
  auto run = [&](int tile) { kTiles[tile].backward_input(d); };
  const int tile = choose_tile(ConvDir::backward_input, p, o.tile, heuristic_tile(d.m, d.oc, 1), run);
  run(tile);
}

void conv2d_backward_weight_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* x,
                                      const float* dy, float* dw, float* db) {
  check_shape(p, "conv2d_backward_weight_cuda");
  const ConvAlgo algo = resolve(ConvDir::backward_weight, p, o.algo);
  if (db) conv::bias_grad(p, dy, db);
  if (algo == ConvAlgo::naive) return conv::backward_weight_naive(p, x, dy, dw);

  const Splits sp = wgrad_splits(p, algo, o.splits);
  // One split writes dw directly; several write partial sums that a second kernel adds in order.
  DeviceScratch<float> partial(sp.count > 1 ? (int64_t)sp.count * p.w_size() : 0);
  float* out = sp.count > 1 ? partial.ptr : dw;
  auto finish = [&] {
    if (sp.count > 1) conv::reduce_splits(p.w_size(), sp.count, partial.ptr, dw);
  };
  if (algo == ConvAlgo::direct) {
    conv::backward_weight_direct(p, x, dy, sp.count, sp.chunk, out);
    return finish();
  }
  ConvWgradParams g{};
  g.x = x;
  g.dy = dy;
  g.out = out;
  g.n = p.n, g.c = p.c, g.h = p.h, g.w = p.w, g.k = p.k;
  g.oh = p.out_h(), g.ow = p.out_w();
  g.r = p.r, g.s = p.s, g.pad_h = p.pad_h, g.pad_w = p.pad_w, g.stride_h = p.stride_h, g.stride_w = p.stride_w;
  g.crs = p.c * p.r * p.s;
  g.hw = p.h * p.w;
  g.ohw = g.oh * g.ow;
  g.l = p.n * g.ohw;
  g.chunk = sp.chunk;
  g.vec_store = g.crs % 4 == 0 && aligned16(out);
  auto run = [&](int tile) {
    kTiles[tile].backward_weight(g, sp.count);
    finish();
  };
  const int tile = choose_tile(ConvDir::backward_weight, p, o.tile, heuristic_tile(p.k, g.crs, sp.count), run);
  run(tile);
}

void conv2d_forward_cuda(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  conv2d_forward_cuda_with(ConvCudaOptions{}, p, x, w, b, y);
}

// Not fused on the GPU yet: the conv, then the elementwise ReLU in place on the same stream.
void conv2d_forward_relu_cuda(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y) {
  conv2d_forward_cuda(p, x, w, b, y);
  relu_forward_cuda(p.y_size(), y, y);
}

void conv2d_backward_input_cuda(const Conv2dShape& p, const float* dy, const float* w, float* dx) {
  conv2d_backward_input_cuda_with(ConvCudaOptions{}, p, dy, w, dx);
}

void conv2d_backward_weight_cuda(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db) {
  conv2d_backward_weight_cuda_with(ConvCudaOptions{}, p, x, dy, dw, db);
}

}  // namespace emotune
