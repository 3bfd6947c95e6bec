// conv2d_infer: the inference-only convolution of the CPU inference graph (layers/inference.h):
// one pass that computes a conv2d (kernels/conv2d.h's contract and layouts) and what follows it
// in the network, per output channel k, in this order:
//   v = conv(x, w)[k] + b[k]                 (b may be null)
//   v = max(v, 0)                            when relu
//   v = v * scale[k] + shift[k]              when scale (a BatchNorm after the ReLU: the paper net)
//   y = max over 2x2 windows, stride 2       when pool2 (floor mode: a last odd row/column dropped)
// A BatchNorm *before* the ReLU (vgg) is not an epilogue: the graph folds it into w and b.
//
// Two ways to the same result:
//   conv2d_infer_im2col_cpu     im2col + OpenBLAS sgemm (kernels/conv2d.h's fast path), then the
//                               epilogue over each image's output while it is in cache. Any shape.
//   conv2d_infer_winograd_cpu   Winograd F(m x m, 3x3) (Lavin & Gray 2016), m = 2 or 4; 3x3,
//                               stride 1 only. Per m x m output tile and channel pair it costs
//                               (m+2)^2 multiplies instead of 9 m^2 (16 vs 36 for m = 2, 36 vs 144
//                               for m = 4):
//                                 V = B^T d B  ((m+2)^2 input tile d, per channel)
//                                 M_xi [K, T] = U_xi [K, C] * V_xi [C, T]   for the (m+2)^2 xi
//                                 Y = A^T M A  (m x m output tile)
//                               with U = G g G^T precomputed once per filter g (winograd_weights).
//                               An output tile holds whole 2x2 pooling windows, so pool2 reduces
//                               them in the output pass. F(4x4) rounds more (its constants reach 8
//                               and 1/24): tests/test_conv2d_infer.cpp bounds both.
// Both run their own OpenMP regions (single-threaded OpenBLAS inside them) and give results that
// do not depend on the thread count. The reference is the unfused chain of conv2d_forward_ref_cpu,
// relu, the affine and max_pool2d (tests/test_conv2d_infer.cpp).
#pragma once
#include <memory>
#include <cstdint>

#include "kernels/conv2d.h"

namespace emotune {

struct ConvEpilogue {
  bool relu = false;
  const float* scale = nullptr;  // [K]; with shift, applied after the ReLU
  const float* shift = nullptr;  // [K]
  bool pool2 = false;            // 2x2 stride-2 max-pool of the result

  int out_h(const Conv2dShape& p) const { return pool2 ? p.out_h() / 2 : p.out_h(); }
  int out_w(const Conv2dShape& p) const { return pool2 ? p.out_w() / 2 : p.out_w(); }
  int64_t y_size(const Conv2dShape& p) const { return (int64_t)p.n * p.k * out_h(p) * out_w(p); }
};

// y [N, K, e.out_h, e.out_w] from x [N, C, H, W], w [K, C, R, S].
void conv2d_infer_im2col_cpu(const Conv2dShape& p, const float* x, const float* w, const float* b,
                             const ConvEpilogue& e, float* y);

// Winograd applies to 3x3 filters at stride 1 (any padding); tile is m, 2 or 4.
bool winograd_supported(const Conv2dShape& p);
// Estimated time of F(m x m) on this call (pool2: the epilogue pools, tiles cover the pooled
// output), in multiply-adds of one core: for choosing m (kernels/cpu/conv2d_infer.cpp says how).
int64_t winograd_cost(const Conv2dShape& p, bool pool2, int m);
// U [(m+2)^2, K, C] (packed, kernels/cpu/gemm_packed.h) from w [K, C, 3, 3].
int64_t winograd_weights_size(const Conv2dShape& p, int tile = 2);
// turned: U of the filters turned 180 degrees with their channel axes swapped, [(m+2)^2, C, K], the
// filters of backward-input as a convolution of dy (kernels/cpu/conv2d.cpp).
void winograd_weights(const Conv2dShape& p, const float* w, float* u, int tile = 2, bool turned = false);
// The F(2x2) filters U rounded to bf16 and laid out for the bf16 kernel in use, made once (an
// inference graph's filters do not change): bf16 products then skip that work on every call.
// Null where its products do not run bf16 now (kernels/cpu/gemm.h, cpu_gemm_runs_bf16: the
// process not at bf16, or C below kBf16MinReduction).
struct WinogradBf16Weights;
std::shared_ptr<const WinogradBf16Weights> winograd_weights_bf16(const Conv2dShape& p, const float* u);
// ub: winograd_weights_bf16 of u, used when the process runs bf16 products with the kernel ub was
// made for (else u is used as it is): the results are the same bit for bit.
void conv2d_infer_winograd_cpu(const Conv2dShape& p, const float* x, const float* u, const float* b,
                               const ConvEpilogue& e, float* y, int tile = 2,
                               const WinogradBf16Weights* ub = nullptr);

// Training's backward-weight through the same tiles: dw [K, C, 3, 3] (overwritten) from x and
// dy [N, K, OH, OW] (kernels/conv2d.h's conv2d_backward_weight without db), tile m = 2 or 4.
void conv2d_backward_weight_winograd_cpu(const Conv2dShape& p, const float* x, const float* dy, float* dw,
                                         int tile = 2);

}  // namespace emotune
