// Direct convolution on AMX tiles, for training's bf16 products (kernels/runtime.h): stride 1, any
// R x S and padding, no im2col and no Winograd transform. The input is converted once per image to
// bf16 channel pairs in a zero-padded [C/2][H + R - 1][W'] layout, which is exactly the form
// TDPBF16PS reads as its B operand: a tile of 16 channel pairs x 16 output columns is 16 rows of
// 64 contiguous bytes, one load per filter tap. The filters become one [16 K][16 channel pairs]
// tile per tap and block, once per call. A 32 (K) x 32 (columns) block of one output row lives in
// four accumulator tiles while the taps and channel blocks are summed; bias and ReLU are applied
// as the block is written.
//   y[n,k,oh,ow] = b[k] + sum_{c,r,s} w[k,c,r,s] x[n,c,oh+r-pad_h,ow+s-pad_w]   (then ReLU if asked)
// Each product is the bf16 rounding of both operands, summed in fp32 in (tap, channel) order: the
// direct sum's bound, |err| <= ((1+u)^2 - 1 + gamma_(C R S + 1)) sum |w x|, u = 2^-8.
#pragma once
#include "kernels/conv2d.h"

namespace emotune {

// Whether it applies: the bf16 kernel in use is amx, its products run bf16 (kernels/cpu/gemm.h,
// cpu_gemm_runs_bf16 of C), stride 1, K >= 16 (fewer output channels would leave most of each
// 16-row tile empty: the first layer's backward-data), a non-empty output.
bool conv2d_amx_applies(const Conv2dShape& p);
// Runs the convolution and returns true when it applies; otherwise returns false and writes
// nothing. Training's forward and backward-data (a forward of dy with the filters turned,
// kernels/cpu/conv2d.cpp) call it first.
bool conv2d_forward_amx(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                        float* y);

}  // namespace emotune
