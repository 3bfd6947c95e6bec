// conv2d_infer (kernels/conv2d_infer.h): im2col + sgemm and Winograd F(2x2, 3x3) and F(4x4, 3x3),
// with every epilogue combination against the unfused chain computed from the reference loops
// (conv2d_forward_ref_cpu, then ReLU, the affine and the 2x2 max-pool), on the layer shapes of
// both networks and on small odd shapes that exercise the ragged tile edges and padding.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/conv2d_infer.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::kFloatEps;
using emotune::testing::random_vector;

namespace {

// F(4x4)'s tolerance: its output is A^T [(G g G^T) . (B^T d B)] A with constants up to 5 (B^T), 8
// (A^T) and inexact sixths (G), so its roundings are relative to the magnitude of that path, not
// to sum |x||w|. In one dimension, for |g| = |d| = 1: |B^T| 1 = (10 10 10 6 6 10), |G| 1 = (1/4 1/2
// 1/2 7/24 7/24 1), and |A^T| applied to their product gives up to 48 where the direct sum is 3:
// 16x per dimension, 256x in two. About four rounding stages (U, V, the products' sums, A^T M A)
// make the bound 4 * 256 = 1024 eps * bound. Measured worst: ~80 (printed by the report case).
// (F(2x2)'s path is at most 8/3 per dimension with exact constants: 16 eps * bound holds.)
double g_worst4 = 0;  // the largest F(4x4) error seen, in units of eps * bound
constexpr double kWinograd4Factor = 1024;

struct Case {
  Conv2dShape p;
  const char* what;
};

// The unfused chain, plus the bound of each output: the same chain run on |x|, |w|, |b| with
// |scale| (the sum of absolute values of everything that was added, times the epilogue's gain).
void reference(const Conv2dShape& p, const std::vector<float>& x, const std::vector<float>& w,
               const std::vector<float>& b, const ConvEpilogue& e, std::vector<float>* y,
               std::vector<double>* bound) {
  const int oh = p.out_h(), ow = p.out_w();
  std::vector<float> conv((size_t)p.y_size()), mag((size_t)p.y_size());
  conv2d_forward_ref_cpu(p, x.data(), w.data(), b.empty() ? nullptr : b.data(), conv.data());
  std::vector<float> ax(x.size()), aw(w.size()), ab(b.size());
  for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
  for (size_t i = 0; i < w.size(); ++i) aw[i] = std::fabs(w[i]);
  for (size_t i = 0; i < b.size(); ++i) ab[i] = std::fabs(b[i]);
  conv2d_forward_ref_cpu(p, ax.data(), aw.data(), ab.empty() ? nullptr : ab.data(), mag.data());
  for (int n = 0; n < p.n; ++n)
    for (int k = 0; k < p.k; ++k)
      for (int i = 0; i < oh * ow; ++i) {
        const size_t at = ((size_t)n * p.k + k) * oh * ow + i;
        float v = conv[at];
        if (e.relu) v = std::max(v, 0.0f);
        if (e.scale) {
          v = v * e.scale[k] + e.shift[k];
          mag[at] *= std::fabs(e.scale[k]);
        }
        conv[at] = v;
      }
  const int ph = e.out_h(p), pw = e.out_w(p);
  y->assign((size_t)e.y_size(p), 0.0f);
  bound->assign((size_t)e.y_size(p), 0.0);
  for (int n = 0; n < p.n; ++n)
    for (int k = 0; k < p.k; ++k) {
      const size_t plane = ((size_t)n * p.k + k) * oh * ow;
      for (int py = 0; py < ph; ++py)
        for (int px = 0; px < pw; ++px) {
          const size_t at = ((size_t)n * p.k + k) * ph * pw + py * pw + px;
          if (!e.pool2) {
            (*y)[at] = conv[plane + py * ow + px];
            (*bound)[at] = mag[plane + py * ow + px];
            continue;
          }
          float best = -INFINITY;
          double m = 0;
          for (int dy = 0; dy < 2; ++dy)
            for (int dx = 0; dx < 2; ++dx) {
              best = std::max(best, conv[plane + (2 * py + dy) * ow + 2 * px + dx]);
              m = std::max(m, (double)mag[plane + (2 * py + dy) * ow + 2 * px + dx]);
            }
          (*y)[at] = best;
          (*bound)[at] = m;
        }
    }
}

std::string name(const Conv2dShape& p, const ConvEpilogue& e, const char* algo) {
  std::ostringstream os;
  os << algo << " n" << p.n << " c" << p.c << " " << p.h << "x" << p.w << " k" << p.k << " pad" << p.pad_h
     << (e.relu ? " relu" : "") << (e.scale ? " affine" : "") << (e.pool2 ? " pool2" : "");
  return os.str();
}

// Tolerance: the fused paths add the same products as the reference in another order, and
// Winograd adds them after its transforms (each a few additions with weights 1 and 1/2, exact
// powers of two), so every output is off by at most a few roundings of the largest partial sums:
// |y - ref| <= 16 eps * bound, with bound the sum of the absolute values of all terms (times the
// affine's |scale|; ReLU and max are 1-Lipschitz). A wrong tile offset, a missed channel or a
// swapped transform sign moves an output by O(|term|), far above that.
void check(const Conv2dShape& p, const ConvEpilogue& e, int winograd, const std::vector<float>& x,
           const std::vector<float>& w, const std::vector<float>& b, const std::vector<float>& want,
           const std::vector<double>& bound) {
  std::vector<float> got((size_t)e.y_size(p), NAN);
  if (winograd) {
    std::vector<float> u((size_t)winograd_weights_size(p, winograd));
    winograd_weights(p, w.data(), u.data(), winograd);
    conv2d_infer_winograd_cpu(p, x.data(), u.data(), b.data(), e, got.data(), winograd);
  } else {
    conv2d_infer_im2col_cpu(p, x.data(), w.data(), b.data(), e, got.data());
  }
  size_t bad = 0, worst = 0;
  double worst_ratio = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs((double)got[i] - want[i]);
    const double tol = (winograd == 4 ? kWinograd4Factor : 16) * kFloatEps * std::max(bound[i], 1e-30);
    if (!(err <= tol)) ++bad;
    if (!(err / tol <= worst_ratio)) worst_ratio = err / tol, worst = i;
  }
  INFO(name(p, e, winograd == 4 ? "winograd4" : winograd ? "winograd2" : "im2col"), ": worst at [", worst, "] got ",
       got[worst], " want ", want[worst], " (", worst_ratio, " of the tolerance)");
  if (winograd == 4) g_worst4 = std::max(g_worst4, worst_ratio * kWinograd4Factor);
  CHECK(bad == 0);
}

std::vector<Case> cases() {
  return {
      // The layers of the paper net (conv2 valid) and vgg (all same); batch 2 where cheap.
      {{1, 64, 48, 48, 64, 3, 3, 0, 0, 1, 1}, "paper conv2"},
      {{2, 64, 23, 23, 128, 3, 3, 1, 1, 1, 1}, "paper conv3"},
      {{2, 128, 23, 23, 128, 3, 3, 1, 1, 1, 1}, "paper conv4"},
      {{2, 128, 11, 11, 256, 3, 3, 1, 1, 1, 1}, "paper conv5"},
      {{2, 256, 11, 11, 256, 3, 3, 1, 1, 1, 1}, "paper conv6"},
      {{2, 256, 5, 5, 512, 3, 3, 1, 1, 1, 1}, "paper conv7"},
      {{2, 1, 48, 48, 64, 3, 3, 1, 1, 1, 1}, "conv1 (both nets)"},
      {{1, 64, 48, 48, 64, 3, 3, 1, 1, 1, 1}, "vgg conv1_2"},
      {{2, 128, 12, 12, 256, 3, 3, 1, 1, 1, 1}, "vgg conv3_1"},
      {{2, 384, 6, 6, 384, 3, 3, 1, 1, 1, 1}, "vgg conv4_2"},
      // Small odd shapes: ragged tiles, 1-pixel images, padding 2, more images than a block.
      {{3, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1}, "odd 7x9"},
      {{1, 3, 3, 3, 4, 3, 3, 0, 0, 1, 1}, "valid 3x3 -> 1x1"},
      {{2, 2, 1, 1, 3, 3, 3, 1, 1, 1, 1}, "1x1 image"},
      {{2, 4, 6, 5, 3, 3, 3, 2, 2, 1, 1}, "pad 2"},
      {{40, 8, 10, 10, 8, 3, 3, 1, 1, 1, 1}, "40 images"},
  };
}

}  // namespace

TEST_CASE("conv2d_infer: im2col and Winograd match the unfused reference chain") {
  uint64_t seed = 100;
  for (const auto& c : cases()) {
    const auto& p = c.p;
    auto scale = random_vector((size_t)p.k, seed + 7, 0.2f, 2.0f);
    auto shift = random_vector((size_t)p.k, seed + 8);
    // Every epilogue on the small shapes; on the network's layers (slow reference loops) the
    // plain conv, ReLU + pool, and everything together.
    const bool big = (int64_t)p.c * p.k >= 64 * 64;
    for (int mask = 0; mask < 8; ++mask) {
      if (big && mask != 0 && mask != 5 && mask != 7) continue;
      ConvEpilogue e;
      e.relu = mask & 1;
      if (mask & 2) e.scale = scale.data(), e.shift = shift.data();
      e.pool2 = (mask & 4) && p.out_h() >= 2 && p.out_w() >= 2;
      if ((mask & 4) && !e.pool2) continue;
      INFO(c.what);
      auto x = random_vector((size_t)p.x_size(), seed);
      auto w = random_vector((size_t)p.w_size(), seed + 1);
      auto b = random_vector((size_t)p.k, seed + 2);
      std::vector<float> want;
      std::vector<double> bound;
      reference(p, x, w, b, e, &want, &bound);
      check(p, e, 0, x, w, b, want, bound);
      if (winograd_supported(p)) {
        check(p, e, 2, x, w, b, want, bound);
        check(p, e, 4, x, w, b, want, bound);
      }
      seed += 3;
    }
  }
}

TEST_CASE("conv2d_infer: report") { MESSAGE("worst F(4x4) error: " << g_worst4 << " eps * bound"); }

TEST_CASE("conv2d_infer: Winograd declines what it cannot compute") {
  CHECK(winograd_supported(Conv2dShape{1, 4, 8, 8, 4, 3, 3, 1, 1, 1, 1}));
  CHECK_FALSE(winograd_supported(Conv2dShape{1, 4, 8, 8, 4, 3, 3, 1, 1, 2, 2}));  // stride 2
  CHECK_FALSE(winograd_supported(Conv2dShape{1, 4, 8, 8, 4, 5, 5, 2, 2, 1, 1}));  // 5x5
  CHECK_FALSE(winograd_supported(Conv2dShape{1, 4, 8, 8, 4, 1, 1, 0, 0, 1, 1}));  // 1x1
}

TEST_CASE("conv2d_infer: a negative scale after the ReLU is pooled after the affine, not before") {
  // max(a*relu(v) + s) != a*max(relu(v)) + s for a < 0: the fused pool must see the affine's output.
  Conv2dShape p{1, 1, 4, 4, 1, 3, 3, 1, 1, 1, 1};
  std::vector<float> x(16), w(9, 0.0f), b{0.0f};
  for (int i = 0; i < 16; ++i) x[i] = (float)i;
  w[4] = 1.0f;  // identity filter
  const float scale[1] = {-1.0f}, shift[1] = {0.5f};
  ConvEpilogue e;
  e.relu = true;
  e.scale = scale;
  e.shift = shift;
  e.pool2 = true;
  std::vector<float> u((size_t)winograd_weights_size(p, 4)), y1(4), y2(4), y3(4);
  winograd_weights(p, w.data(), u.data(), 2);
  conv2d_infer_winograd_cpu(p, x.data(), u.data(), b.data(), e, y1.data(), 2);
  winograd_weights(p, w.data(), u.data(), 4);
  conv2d_infer_winograd_cpu(p, x.data(), u.data(), b.data(), e, y3.data(), 4);
  conv2d_infer_im2col_cpu(p, x.data(), w.data(), b.data(), e, y2.data());
  // Windows {0,1,4,5}, {2,3,6,7}, {8,9,12,13}, {10,11,14,15}: max of 0.5 - v is 0.5 - min.
  const float want[4] = {0.5f, -1.5f, -7.5f, -9.5f};
  for (int i = 0; i < 4; ++i) {
    CHECK(y1[i] == doctest::Approx(want[i]).epsilon(1e-6));
    CHECK(y2[i] == doctest::Approx(want[i]).epsilon(1e-6));
    CHECK(y3[i] == doctest::Approx(want[i]).epsilon(1e-5));  // F(4x4): sixths of the identity filter
  }
}
