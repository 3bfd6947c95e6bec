// The knobs behind conv2d_*_cuda, for the tests (which force every algorithm and tile on every
// shape) and the benchmark (which reports what ran). Host-only header; pointers are on the device.
//
// Algorithms:
//   igemm   the implicit-GEMM kernel of conv2d_igemm.cuh (the fast path for real layers), with a
//           tile shape picked per problem by timing every tile once on the first call (a cached
//           autotune; EMOTUNE_CONV_TUNE=0 uses a heuristic instead). All tiles give bit-identical
//           results, so tuning never changes a value.
//   direct  one thread per output pixel, for the shapes a GEMM tile would mostly waste: forward
//           and backward_weight with C*R*S <= 32 (the 1-channel first layer), backward_input
//           with C <= 4.
//   naive   one thread per output element with 64-bit indices: slow, simple, for any size (used
//           when a tensor has 2^31 elements or more, and as a second opinion in the tests).
#pragma once
#include <string>

#include "kernels/conv2d.h"

namespace emotune {

enum class ConvDir { forward, backward_input, backward_weight };
enum class ConvAlgo { automatic, igemm, direct, naive };

struct ConvCudaOptions {
  ConvAlgo algo = ConvAlgo::automatic;
  int tile = -1;    // igemm tile index (< conv2d_cuda_tile_count()); -1: tuned per shape
  int splits = 0;   // backward_weight reduction splits; 0: chosen from the shape and SM count
};

int conv2d_cuda_tile_count();
const char* conv2d_cuda_tile_name(int tile);  // "128x64": rows x columns of the GEMM block tile
// Whether `algo` can run `dir` on shape p (automatic and naive always can).
bool conv2d_cuda_supports(ConvDir dir, ConvAlgo algo, const Conv2dShape& p);
// What ConvAlgo::automatic runs for this shape, e.g. "igemm 128x64 splits=6" (the tile is known
// once the shape has been run, as the choice is tuned on the first call).
std::string conv2d_cuda_describe(ConvDir dir, const Conv2dShape& p);

void conv2d_forward_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* x,
                              const float* w, const float* b, float* y);
void conv2d_backward_input_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* dy,
                                     const float* w, float* dx);
void conv2d_backward_weight_cuda_with(const ConvCudaOptions& o, const Conv2dShape& p, const float* x,
                                      const float* dy, float* dw, float* db);

namespace conv {
// The direct and naive kernels (kernels/cuda/conv2d_direct.cu), called by conv2d.cu.
constexpr int kDirectMaxTaps = 32;           // C*R*S limit of the direct forward / weight kernels
constexpr int kDirectMaxFilter = 12288;      // K*C*R*S limit of the direct backward_input (48 KB)
void forward_direct(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void backward_input_direct(const Conv2dShape& p, const float* dy, const float* w, float* dx);
// Partial sums of dw over `splits` reduction ranges of `chunk` steps: partial [splits][K][C*R*S].
void backward_weight_direct(const Conv2dShape& p, const float* x, const float* dy, int splits,
                            int chunk, float* partial);
void forward_naive(const Conv2dShape& p, const float* x, const float* w, const float* b, float* y);
void backward_input_naive(const Conv2dShape& p, const float* dy, const float* w, float* dx);
void backward_weight_naive(const Conv2dShape& p, const float* x, const float* dy, float* dw);
// db[k] = sum over n, p, q of dy (one block per channel, deterministic).
void bias_grad(const Conv2dShape& p, const float* dy, float* db);
// dw[i] = sum_z partial[z][i], z in order (deterministic).
void reduce_splits(int64_t count, int splits, const float* partial, float* dw);
}  // namespace conv

}  // namespace emotune
