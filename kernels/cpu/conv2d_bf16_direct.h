// Direct convolution in bf16, for training's bf16 products (kernels/runtime.h): stride 1, any
// R x S and padding, no im2col and no Winograd transform, on either bf16 kernel (kernels/cpu/
// gemm_bf16.h). The input is converted once per image to bf16 channel pairs in a zero-padded
// [pairs][H + R - 1][W'] layout; the output is computed over that padded row pitch, so the inputs
// of consecutive output positions for one filter tap are consecutive values of one plane.
//   amx: the image is laid out positions-major instead ([hx][wx][pairs]), so that 16 consecutive
//     positions x 16 channel pairs are one A tile whose rows are whole cache lines (a tap's
//     offset moves whole rows); the filters are one [16 pairs][16 K] B tile per tap, chunk of
//     pairs and 16 output channels; a 32 (positions) x 32 (K) block of the output lives in four
//     accumulator tiles.
//   avx512-bf16: an 8 (K) x 48 (positions) block lives in 24 ZMM registers; per tap and channel
//     pair, three loads of 16 positions and one broadcast filter pair per output channel feed
//     VDPBF16PS. Small images, where the padded pitch wastes most of such a block, turn it
//     around: 64 output channels across the lanes of four ZMM, the input pairs of 6 valid
//     positions broadcast. (Winograd F(2x2) on the bf16 GEMM, which this replaces, re-packs the
//     transformed tiles for every product and made bf16 slower than fp32 on Zen 4:
//     docs/benchmarks.md.)
// Bias and ReLU are applied as a block is written.
//   y[n,k,oh,ow] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n,c,oh+r-pad_h,ow+s-pad_w]   (then ReLU if asked)
// Each product is the bf16 rounding of both operands, summed in fp32 in (tap, channel) order on
// both kernels: the direct sum's bound, |err| <= ((1+u)^2 - 1 + gamma_(C R S + 1)) sum |w x|,
// u = 2^-8.
#pragma once
#include <memory>

#include "kernels/conv2d.h"

namespace emotune {

// Whether it applies: training's products run bf16 (kernels/cpu/gemm.h, cpu_gemm_runs_bf16 of C),
// stride 1, K >= 16 (fewer output channels would leave most of each block empty: the first
// layer's backward-data), a non-empty output. Either bf16 kernel.
bool conv2d_bf16_direct_applies(const Conv2dShape& p);
// Runs the convolution and returns true when it applies; otherwise returns false and writes
// nothing. Training's forward and backward-data (a forward of dy with the filters turned,
// kernels/cpu/conv2d.cpp) call it first.
// prepared (optional): the filters packed once by conv2d_bf16_direct_filters for this shape; used
// where they were packed for the bf16 kernel in use, else the filters are packed from w for the
// call (bit for bit the same result). scale, shift (optional, [K]): y = relu(...) * scale + shift,
// the inference graph's BatchNorm after a ReLU (kernels/conv2d_infer.h, ConvEpilogue).
struct Bf16DirectFilters;
bool conv2d_forward_bf16_direct(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                                float* y, const Bf16DirectFilters* prepared = nullptr, const float* scale = nullptr,
                                const float* shift = nullptr);
// The filters w [K, C, R, S] packed for the bf16 kernel in use, once (an inference graph's filters
// do not change); null where the direct form does not apply.
std::shared_ptr<const Bf16DirectFilters> conv2d_bf16_direct_filters(const Conv2dShape& p, const float* w);
// Whether the inference graph's convolution takes the direct form (layers/inference.cpp): where it
// applies and the bf16 kernel is amx, where it was measured faster than Winograd F(2x2) on the bf16
// GEMM (docs/benchmarks.md, 2026-12-07); on the avx512-bf16 kernel Winograd stays (not measured).
bool conv2d_bf16_direct_for_inference(const Conv2dShape& p);

// Backward-weight, direct, on AMX tiles or VDPBF16PS:
//   dw[k,c,r,s] = sum_{n,oh,ow} dy[n,k,oh,ow] x[n,c,oh+r-pad_h,ow+s-pad_w]
// The reduction runs over positions, so the bf16 pairs are pairs of consecutive positions.
//   amx (the amx kernel, C a multiple of 16): positions over the padded image's pitch, images one
//     after the other (dy zero where no output is), so that 32 consecutive positions of one
//     (c, r, s) are 32 consecutive bf16 of channel c's packed plane, from r wx + s on: 16 channels
//     at one tap are one A tile (rows a plane apart), dy turned to [pair][K] the B tile, and a
//     32 (c) x 32 (K) block at one tap lives in four accumulator tiles.
//   VDPBF16PS (otherwise): pairs of consecutive positions of a row (OW rounded up to even): dy's
//     (ow, ow + 1) with x's (ow + s, ow + s + 1), read as one 32-bit word at any offset of x's
//     padded bf16 plane. 16 output channels across the lanes of a ZMM (dy turned to [pair][K] as it
//     is packed), x's pairs broadcast: a 64 (K) x 6 (c, r, s) block in 24 ZMM accumulators.
// Each product is the bf16 rounding of both operands summed in fp32 over the positions (each
// worker's images in order, then the workers' partial sums in worker order: deterministic for a
// given number of threads): |err| <= ((1+u)^2 - 1 + gamma_(N OH OW + threads)) sum |dy x|,
// u = 2^-8. (Winograd F(2x2) on the bf16 GEMM, which this replaces, ran 0.26-0.71x oneDNN's speed
// per layer on Zen 4 and 0.19-0.90x on AMX: docs/benchmarks.md.)
// Whether it applies: a bf16 kernel (either), training's products bf16 for a reduction of
// N OH OW, stride 1, a non-empty output. Any C, K, R, S and padding.
bool conv2d_bf16_direct_weight_applies(const Conv2dShape& p);
// Whether it runs the amx form (else VDPBF16PS).
bool conv2d_bf16_direct_weight_on_amx(const Conv2dShape& p);
// dw [K, C, R, S] and, unless null, db [K] (each dy summed in double, as the fp32 path does;
// read as dy is packed), overwritten, and true where it applies; false and nothing written
// otherwise.
bool conv2d_backward_weight_bf16_direct(const Conv2dShape& p, const float* x, const float* dy, float* dw,
                                        float* db = nullptr);

}  // namespace emotune
