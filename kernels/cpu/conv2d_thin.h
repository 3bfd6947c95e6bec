// A direct fp32 convolution for thin inputs: stride 1 and at most kThinMaxTaps = C*R*S terms per
// output (the first layer of both networks: one grey channel, 3x3, nine terms). im2col + sgemm
// spends its time there on a GEMM with a nine-long reduction and on writing the column matrix; here
// each 16-column stretch of an output row loads its C*R*S shifted input vectors into registers and
// each of a block of 8 output channels is nine broadcast multiply-adds on them, stored once.
//   forward:          y[n,k,oy,ox] = b[k] + sum_t w[k,t] x_pad[n, t's channel, oy + r, ox + s],
//                     then ReLU (a NaN passes) and the affine v * scale[k] + shift[k] (two roundings,
//                     as the unfused chain), when asked;
//   backward-weight:  dw[k,t] = sum over n, oy, ox of dy[n,k,oy,ox] x_pad[...], db[k] = sum of dy
//                     (in double, as backward_bias sums it): per worker, 16-lane sums over its
//                     contiguous run of output rows, then the workers' sums added in worker order
//                     (the result depends on the thread count, never on timing).
// AVX-512 only (kernels/cpu/gemm_packed.h, has_avx512): elsewhere conv2d_thin_applies is false and
// the callers keep im2col. Tests: tests/test_conv2d.cpp (exact integer sums on the real first
// layers, and a bound derived from float's rounding against the reference loops).
#pragma once
#include "kernels/conv2d.h"

namespace emotune {

constexpr int kThinMaxTaps = 16;

// Stride 1, C*R*S <= kThinMaxTaps, an output row at least 16 wide, and AVX-512 on this CPU.
bool conv2d_thin_applies(const Conv2dShape& p);

// y [N, K, OH, OW] from x [N, C, H, W], w [K, C, R, S], b [K] or null; scale/shift [K] or null.
void conv2d_thin_forward(const Conv2dShape& p, const float* x, const float* w, const float* b, bool relu,
                         const float* scale, const float* shift, float* y);

// dw [K, C, R, S] and db [K] (db may be null), overwritten.
void conv2d_thin_backward_weight(const Conv2dShape& p, const float* x, const float* dy, float* dw, float* db);

}  // namespace emotune
