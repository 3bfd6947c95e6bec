// conv2d CUDA kernels against the CPU reference (conv2d_*_ref_cpu) on every shape of the shared
// table: forward, backward_input, backward_weight (+ bias), every algorithm (automatic, each
// implicit-GEMM tile, direct where it applies, naive), at batch 2, every real layer at the train
// step's batch (8), and three real layers at batch 16.
// Outputs are poisoned with NaN first, so an element a kernel forgets to write fails.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "base/error.h"
#include "kernels/conv2d.h"
#include "kernels/cuda/conv2d_cuda.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::DeviceBuffer;
using emotune::testing::random_vector;

namespace {

std::string describe(const std::string& name, const Conv2dShape& p) {
  std::ostringstream os;
  os << name << " [n" << p.n << " c" << p.c << " " << p.h << "x" << p.w << " k" << p.k << " " << p.r << "x" << p.s
     << " pad" << p.pad_h << "," << p.pad_w << " stride" << p.stride_h << "," << p.stride_w << "]";
  return os.str();
}

// Tolerance for a float sum of `terms` products of values in [-1, 1], computed in a different
// order (and with FMA) on the GPU than in the reference: rounding errors of a length-K sum with
// random signs grow like eps * K * rms(term) (a random walk over partial sums of size sqrt(k)),
// rms(term) = 1/3; atol = 4 eps K covers both sides' errors (the CPU tests use the same bound).
// A missed, doubled or shifted term is of order 0.1 to 1, far above it.
double parity_atol(double terms) { return 4.0 * std::numeric_limits<float>::epsilon() * terms; }
constexpr double kRtol = 1e-5;  // ~1-ulp roundings of the large outputs

struct Variant {
  std::string name;
  ConvCudaOptions opt;
};

std::vector<Variant> variants(ConvDir dir, const Conv2dShape& p) {
  std::vector<Variant> v;
  v.push_back({"automatic (" + conv2d_cuda_describe(dir, p) + ")", {}});
  const bool quick = testing::sanitize_quick();
  for (int t = 0; t < conv2d_cuda_tile_count(); ++t) {
    if (quick && t != 0 && t != conv2d_cuda_tile_count() - 1) continue;
    ConvCudaOptions o;
    o.algo = ConvAlgo::igemm;
    o.tile = t;
    v.push_back({std::string("igemm ") + conv2d_cuda_tile_name(t), o});
  }
  if (conv2d_cuda_supports(dir, ConvAlgo::direct, p)) {
    ConvCudaOptions o;
    o.algo = ConvAlgo::direct;
    v.push_back({"direct", o});
  }
  ConvCudaOptions o;
  o.algo = ConvAlgo::naive;
  v.push_back({"naive", o});
  return v;
}

// Random inputs and the CPU reference outputs of one shape.
struct Problem {
  Conv2dShape p;
  bool with_bias;
  std::vector<float> x, w, b, dy, y_ref, dx_ref, dw_ref, db_ref;

  // fast_reference: the CPU fast path (im2col + OpenBLAS, checked against the loops in
  // test_kernels_conv2d) instead of the loops, which take ~90 s for the real layers at batch 8.
  Problem(const Conv2dShape& shape, bool bias, uint64_t seed, bool fast_reference = false)
      : p(shape), with_bias(bias) {
    x = random_vector(p.x_size(), seed);
    w = random_vector(p.w_size(), seed + 1);
    b = random_vector(p.k, seed + 2);
    dy = random_vector(p.y_size(), seed + 3);
    y_ref.resize(p.y_size());
    dx_ref.resize(p.x_size());
    dw_ref.resize(p.w_size());
    db_ref.resize(p.k);
    if (fast_reference) {
      conv2d_forward_cpu(p, x.data(), w.data(), bias ? b.data() : nullptr, y_ref.data());
      conv2d_backward_input_cpu(p, dy.data(), w.data(), dx_ref.data());
      conv2d_backward_weight_cpu(p, x.data(), dy.data(), dw_ref.data(), db_ref.data());
      return;
    }
    conv2d_forward_ref_cpu(p, x.data(), w.data(), bias ? b.data() : nullptr, y_ref.data());
    conv2d_backward_input_ref_cpu(p, dy.data(), w.data(), dx_ref.data());
    conv2d_backward_weight_ref_cpu(p, x.data(), dy.data(), dw_ref.data(), db_ref.data());
  }
  double forward_terms() const { return (double)p.c * p.r * p.s; }
  double input_terms() const { return (double)p.k * p.r * p.s; }  // at most; fewer with stride > 1
  double weight_terms() const { return (double)p.n * p.out_h() * p.out_w(); }
};

// Runs every variant of every direction on one problem; returns the number of variants run.
int check_problem(const std::string& name, const Problem& pr, bool all_variants) {
  const Conv2dShape& p = pr.p;
  DeviceBuffer x(pr.x), w(pr.w), b(pr.b), dy(pr.dy);
  DeviceBuffer y(p.y_size()), dx(p.x_size()), dw(p.w_size()), db(p.k);
  const float* bias = pr.with_bias ? b.ptr : nullptr;
  int runs = 0;
  auto pick = [&](ConvDir dir) {
    std::vector<Variant> v = variants(dir, p);
    if (!all_variants) v.resize(1);
    return v;
  };
  std::vector<float> first_igemm;
  for (const Variant& v : pick(ConvDir::forward)) {
    INFO(describe(name, p), " forward, ", v.name, pr.with_bias ? ", bias" : ", no bias");
    y.poison();
    conv2d_forward_cuda_with(v.opt, p, x.ptr, w.ptr, bias, y.ptr);
    const std::vector<float> got = y.host();
    EMOTUNE_CHECK_CLOSE(allclose(got, pr.y_ref, parity_atol(pr.forward_terms()), kRtol));
    // Every tile sums in the same order (conv2d_igemm.cuh), so the tiles agree bit for bit.
    if (v.opt.algo == ConvAlgo::igemm) {
      if (first_igemm.empty()) first_igemm = got;
      CHECK(std::memcmp(got.data(), first_igemm.data(), got.size() * sizeof(float)) == 0);
    }
    ++runs;
  }
  first_igemm.clear();
  for (const Variant& v : pick(ConvDir::backward_input)) {
    INFO(describe(name, p), " backward_input, ", v.name);
    dx.poison();
    conv2d_backward_input_cuda_with(v.opt, p, dy.ptr, w.ptr, dx.ptr);
    const std::vector<float> got = dx.host();
    EMOTUNE_CHECK_CLOSE(allclose(got, pr.dx_ref, parity_atol(pr.input_terms()), kRtol));
    if (v.opt.algo == ConvAlgo::igemm) {
      if (first_igemm.empty()) first_igemm = got;
      CHECK(std::memcmp(got.data(), first_igemm.data(), got.size() * sizeof(float)) == 0);
    }
    ++runs;
  }
  first_igemm.clear();
  for (const Variant& v : pick(ConvDir::backward_weight)) {
    INFO(describe(name, p), " backward_weight, ", v.name);
    dw.poison();
    db.poison();
    conv2d_backward_weight_cuda_with(v.opt, p, x.ptr, dy.ptr, dw.ptr, pr.with_bias ? db.ptr : nullptr);
    const std::vector<float> got = dw.host();
    EMOTUNE_CHECK_CLOSE(allclose(got, pr.dw_ref, parity_atol(pr.weight_terms()), kRtol));
    if (pr.with_bias) {
      // db: a sum of N*OH*OW values of dy in [-1, 1] (rms 0.58): the same random-walk bound.
      EMOTUNE_CHECK_CLOSE(allclose(db.host(), pr.db_ref, parity_atol(pr.weight_terms()), kRtol));
    }
    if (v.opt.algo == ConvAlgo::igemm) {
      if (first_igemm.empty()) first_igemm = got;
      CHECK(std::memcmp(got.data(), first_igemm.data(), got.size() * sizeof(float)) == 0);
    }
    ++runs;
  }
  return runs;
}

const testing::ConvCase& find_case(const std::string& prefix) {
  for (const auto& c : testing::conv_cases())
    if (c.name.rfind(prefix, 0) == 0) return c;
  FAIL("no conv case named " << prefix);
  return testing::conv_cases().front();
}

}  // namespace

TEST_CASE("cuda conv2d: every table shape at batch 2, every algorithm and tile, matches the CPU reference") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d parity on the shape table")) return;
  const int batch = testing::sanitize_quick() ? 1 : 2;
  int index = 0, runs = 0;
  for (const auto& c : testing::conv_cases()) {
    Conv2dShape p = c.shape;
    p.n = batch;
    // Half of the cases without bias / bias gradient: both paths of every kernel are covered.
    const Problem pr(p, index % 2 == 0, 1000 + 10 * index);
    runs += check_problem(c.name, pr, true);
    ++index;
  }
  MESSAGE(runs << " kernel runs checked on " << index << " shapes");
}

TEST_CASE("cuda conv2d: real layers at batch 16 (the tuned automatic path) match the CPU reference") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d parity at batch 16")) return;
  if (testing::sanitize_quick()) {
    MESSAGE("EMOTUNE_SANITIZE_QUICK: batch-16 layers skipped");
    return;
  }
  for (const char* name : {"paper.conv2", "paper.conv3", "paper.conv6"}) {
    Conv2dShape p = find_case(name).shape;
    p.n = 16;
    const Problem pr(p, true, 77);
    check_problem(name, pr, false);
    MESSAGE(describe(name, p) << ": forward " << conv2d_cuda_describe(ConvDir::forward, p) << ", backward_input "
                              << conv2d_cuda_describe(ConvDir::backward_input, p) << ", backward_weight "
                              << conv2d_cuda_describe(ConvDir::backward_weight, p));
  }
}

TEST_CASE("cuda conv2d: real layers at the train step's batch, tuned path and every tile, match the CPU reference") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d parity at the train step's batch")) return;
  if (testing::sanitize_quick()) {
    MESSAGE("EMOTUNE_SANITIZE_QUICK: train-step-batch layers skipped");
    return;
  }
  // The automatic variant runs what the step test runs (the tuned tile, or the heuristic under
  // EMOTUNE_CONV_TUNE=0, and the split count of this batch); the forced tiles cover every choice
  // the tuner can make here.
  int index = 0;
  for (const auto& c : testing::conv_cases()) {
    if (!c.real) continue;
    Conv2dShape p = c.shape;
    p.n = testing::kTrainStepBatch;
    const Problem pr(p, index % 2 == 0, 3000 + 10 * index, /*fast_reference=*/true);
    check_problem(c.name, pr, true);
    MESSAGE(describe(c.name, p) << ": forward " << conv2d_cuda_describe(ConvDir::forward, p) << ", backward_input "
                                << conv2d_cuda_describe(ConvDir::backward_input, p) << ", backward_weight "
                                << conv2d_cuda_describe(ConvDir::backward_weight, p));
    ++index;
  }
}

TEST_CASE("cuda conv2d: backward_weight gives the right sums for any number of reduction splits") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d split reductions")) return;
  for (const char* name : {"paper.conv1", "paper.conv7", "edge 5x5 s3", "edge 3x3 17->33"}) {
    Conv2dShape p = find_case(name).shape;
    p.n = 2;
    const Problem pr(p, true, 99);
    DeviceBuffer x(pr.x), dy(pr.dy), dw(p.w_size()), db(p.k);
    for (int splits : {1, 2, 3, 7, 64}) {
      for (ConvAlgo algo : {ConvAlgo::igemm, ConvAlgo::direct}) {
        if (!conv2d_cuda_supports(ConvDir::backward_weight, algo, p)) continue;
        ConvCudaOptions o;
        o.algo = algo;
        o.splits = splits;
        INFO(describe(name, p), (algo == ConvAlgo::igemm ? " igemm" : " direct"), " splits ", splits);
        dw.poison();
        conv2d_backward_weight_cuda_with(o, p, x.ptr, dy.ptr, dw.ptr, db.ptr);
        EMOTUNE_CHECK_CLOSE(allclose(dw.host(), pr.dw_ref, parity_atol(pr.weight_terms()), kRtol));
        EMOTUNE_CHECK_CLOSE(allclose(db.host(), pr.db_ref, parity_atol(pr.weight_terms()), kRtol));
      }
    }
  }
}

TEST_CASE("cuda conv2d: outputs that are not 16-byte aligned take the scalar stores and stay right") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d unaligned outputs")) return;
  // conv2: OH*OW = 2116 and H*W = 2304 are multiples of 4 and C*R*S = 576 too, so aligned outputs
  // use float4 stores; one float of offset forces the scalar path in all three directions.
  Conv2dShape p = find_case("paper.conv2").shape;
  p.n = 1;
  const Problem pr(p, true, 5);
  DeviceBuffer x(pr.x), w(pr.w), b(pr.b), dy(pr.dy);
  DeviceBuffer y(p.y_size() + 1), dx(p.x_size() + 1), dw(p.w_size() + 1);
  for (int t = 0; t < conv2d_cuda_tile_count(); ++t) {
    ConvCudaOptions o;
    o.algo = ConvAlgo::igemm;
    o.tile = t;
    o.splits = 1;  // backward_weight then stores straight into dw + 1, not into a partial buffer
    INFO("tile ", conv2d_cuda_tile_name(t));
    y.poison();
    dx.poison();
    dw.poison();
    conv2d_forward_cuda_with(o, p, x.ptr, w.ptr, b.ptr, y.ptr + 1);
    conv2d_backward_input_cuda_with(o, p, dy.ptr, w.ptr, dx.ptr + 1);
    conv2d_backward_weight_cuda_with(o, p, x.ptr, dy.ptr, dw.ptr + 1, nullptr);
    const std::vector<float> yh = y.host(), dxh = dx.host(), dwh = dw.host();
    EMOTUNE_CHECK_CLOSE(allclose(yh.data() + 1, pr.y_ref.data(), pr.y_ref.size(), parity_atol(pr.forward_terms()), kRtol));
    EMOTUNE_CHECK_CLOSE(allclose(dxh.data() + 1, pr.dx_ref.data(), pr.dx_ref.size(), parity_atol(pr.input_terms()), kRtol));
    EMOTUNE_CHECK_CLOSE(allclose(dwh.data() + 1, pr.dw_ref.data(), pr.dw_ref.size(), parity_atol(pr.weight_terms()), kRtol));
    CHECK(std::isnan(yh[0]));  // nothing written before the output
    CHECK(std::isnan(dxh[0]));
    CHECK(std::isnan(dwh[0]));
  }
}

TEST_CASE("cuda conv2d: the automatic path is deterministic from call to call") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d determinism")) return;
  Conv2dShape p = find_case("paper.conv4").shape;
  p.n = 2;
  const std::vector<float> xv = random_vector(p.x_size(), 11), dyv = random_vector(p.y_size(), 12);
  DeviceBuffer x(xv), dy(dyv), dw1(p.w_size()), dw2(p.w_size());
  conv2d_backward_weight_cuda(p, x.ptr, dy.ptr, dw1.ptr, nullptr);  // may tune: runs every tile
  conv2d_backward_weight_cuda(p, x.ptr, dy.ptr, dw2.ptr, nullptr);  // cached choice
  const std::vector<float> a = dw1.host(), b = dw2.host();
  CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
}

TEST_CASE("cuda conv2d_forward_relu: the conv then ReLU, against the CPU reference on real layers") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d_forward_relu")) return;
  // The training graph's conv + ReLU entry (ops::conv2d_relu): the automatic conv, then ReLU in
  // place. Reference: conv2d_forward_ref_cpu, then max(v, 0); the conv's parity tolerance (a ReLU
  // only zeroes values or leaves them, so it cannot add error).
  for (const char* name : {"paper.conv1", "paper.conv4", "vgg.conv3_2"}) {
    Conv2dShape p = find_case(name).shape;
    p.n = 2;
    CAPTURE(describe(name, p));
    const auto xv = random_vector(p.x_size(), 21), wv = random_vector(p.w_size(), 22), bv = random_vector(p.k, 23);
    std::vector<float> want(p.y_size());
    conv2d_forward_ref_cpu(p, xv.data(), wv.data(), bv.data(), want.data());
    for (float& v : want) v = v > 0.0f ? v : 0.0f;
    DeviceBuffer x(xv), w(wv), b(bv), y(p.y_size());
    y.poison();
    conv2d_forward_relu_cuda(p, x.ptr, w.ptr, b.ptr, y.ptr);
    EMOTUNE_CHECK_CLOSE(allclose(y.host(), want, parity_atol(p.c * p.r * p.s + 1), kRtol));
  }
}

TEST_CASE("cuda conv2d: invalid shapes are refused with the shape named") {
  if (!emotune::testing::cuda_or_skip("cuda conv2d shape errors")) return;
  Conv2dShape p = testing::conv_shape(3, 2, 2, 4, 3, 3, 0, 1);  // 3x3 filter on a 2x2 input, no padding
  CHECK_THROWS_WITH_AS(conv2d_forward_cuda(p, nullptr, nullptr, nullptr, nullptr),
                       doctest::Contains("filter is larger"), emotune::Error);
  p = testing::conv_shape(3, 8, 8, 4, 3, 3, 1, 0);  // stride 0
  CHECK_THROWS_AS(conv2d_backward_input_cuda(p, nullptr, nullptr, nullptr), emotune::Error);
}
