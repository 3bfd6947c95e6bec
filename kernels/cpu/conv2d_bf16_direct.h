// Direct convolution in bf16, for training's bf16 products (kernels/runtime.h): stride 1, any
// R x S and padding, no im2col and no Winograd transform, on either bf16 kernel (kernels/cpu/
// gemm_bf16.h). The input is converted once per image to bf16 channel pairs in a zero-padded
// [pairs][H + R - 1][W'] layout; the output is computed over that padded row pitch, so the inputs
// of consecutive output positions for one filter tap are consecutive values of one plane.
//   amx: that plane is exactly the B operand TDPBF16PS reads (16 channel pairs x 16 positions,
//     one tile load per tap); the filters are one [16 K][16 pairs] tile per tap and block; a 32 (K)
//     x 32 (positions) block of the output lives in four accumulator tiles.
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
#include "kernels/conv2d.h"

namespace emotune {

// Whether it applies: training's products run bf16 (kernels/cpu/gemm.h, cpu_gemm_runs_bf16 of C),
// stride 1, K >= 16 (fewer output channels would leave most of each block empty: the first
// layer's backward-data), a non-empty output. Either bf16 kernel.
bool conv2d_bf16_direct_applies(const Conv2dShape& p);
// Runs the convolution and returns true when it applies; otherwise returns false and writes
// nothing. Training's forward and backward-data (a forward of dy with the filters turned,
// kernels/cpu/conv2d.cpp) call it first.
bool conv2d_forward_bf16_direct(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                                float* y);

}  // namespace emotune
