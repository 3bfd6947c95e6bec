// The step comparison of tests/step_compare.h, checked on the CPU alone (no GPU needed):
//  - the old end-to-end rule (final gradients of two full steps within 1e-3 of each tensor's
//    largest element) fails on a candidate that differs from the CPU only by round-off, because a
//    ReLU mask or a pool argmax flips; the layer-wise rule passes the same candidates;
//  - the layer-wise rule still fails when one backward is off by 1e-3 (relative), and names the
//    layer, and only that layer;
//  - the zero-in-theory rule (vgg's dense1.bias) passes round-off and catches a real offset;
//  - the optimizer half (SGD replayed from the candidate's gradients) passes and catches an
//    update off by 1e-4;
//  - the recorder, which cuts the graph between layers, gives the whole-graph step's bits.
// The candidate is the CPU step with every value a kernel produces (and the input images)
// multiplied by 1 + 1e-7 u, u in [-1, 1) hashed from the value (equal values stay equal): a
// stand-in for a device whose kernels round differently (1e-7 is about one float ulp). Batch 4,
// not the GPU test's 8, keeps the file short (~20 s of CPU time); flips are rarer at batch 4 but
// still occur (see the first test).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "tests/step_compare.h"

using namespace emotune;
using namespace emotune::testing;

namespace {

constexpr double kUlpJitter = 1e-7;
constexpr double kMutation = 1e-3;  // 5x the layer-wise bound, 1000x below any wrong rule

Jitter ulp_jitter(uint64_t seed) {
  Jitter j;
  j.input = j.activations = j.gradients = kUlpJitter;
  j.seed = seed;
  return j;
}

double worst_excess(const StepComparison& c) {
  double w = 0;
  for (const Check& k : c.checks) w = std::max(w, k.excess);
  return w;
}

// The same SGD as test_cuda_train_step.cpp.
std::unique_ptr<Optimizer> sgd(std::vector<ParamRef> params) {
  SgdOptions sp;  // the step's lr is StepSetup::lr
  sp.momentum = 0.9f;
  sp.nesterov = true;
  sp.weight_decay = 1e-4f;
  return std::make_unique<Sgd>(std::move(params), sp);
}

// The layers that failed a check, in the order the checks ran.
std::vector<std::string> failed_layers(const StepComparison& c) {
  std::vector<std::string> out;
  for (const Check& k : c.checks)
    if (!k.ok && std::find(out.begin(), out.end(), k.layer) == out.end()) out.push_back(k.layer);
  return out;
}

}  // namespace

TEST_CASE("the end-to-end rule fails on round-off through a flipped ReLU or pool; the layer-wise rule does not") {
  // Whether a seed's forward pass has an element within ~1e-7 of a kink or tie is chance: at
  // batch 8 the issue measured 2 of 6 vgg and 3 of 6 paper seeds failing the old rule. At batch 4
  // with this jitter, seeds 1-3 gave when this test was written: paper seed 3 failing (11
  // tensors, 2 ReLU masks flipped from relu3 on), vgg seeds 2 and 3 flipping one ReLU mask each
  // without failing. Later kernels (Winograd training products) and other CPUs moved the flips: on
  // an AMD EPYC family 26 (Zen 5; OpenBLAS Haswell kernels, 2026-12-06) seeds 1-3 flipped
  // decisions without any old-rule failure, and of seeds 1-10 vgg 4 and 7 failed it on a flipped
  // ReLU (paper 5 and 9, vgg 3 and 10 flipped one decision without failing). So the test runs
  // seeds 1-10 of both networks and requires at least one old-rule failure on a flip among them;
  // every seed must pass the layer-wise rule. If the flips move out of range again, widen it.
  int flip_failures = 0, seeds_run = 0;
  for (const std::string arch : {"paper", "vgg"}) {
    for (uint64_t seed = 1; seed <= 10; ++seed) {
      StepSetup s;
      s.arch = arch;
      s.batch = 4;
      s.input_seed = seed;
      const std::vector<std::string> zero = zero_in_theory_parameters(s);
      const StepRecord clean = record_step(s, Device::cpu);
      const StepRecord cand = record_step(s, Device::cpu, nullptr, ulp_jitter(seed));
      ++seeds_run;

      const StepComparison c = compare_step_layerwise(s, cand);
      INFO(arch << " seed " << seed << ":\n" << c.summary());
      CHECK(c.ok);
      // The comparison saw the jitter: the sides are not bit-identical, yet within the bounds.
      CHECK(worst_excess(c) > 0);

      const EndToEnd e = compare_step_end_to_end(cand, clean);
      std::vector<std::string> flipped;  // failures other than zero-in-theory tensors
      for (const auto& name : e.failed)
        if (std::find(zero.begin(), zero.end(), name) == zero.end()) flipped.push_back(name);
      const Flips f = decision_flips(s, cand, clean);
      MESSAGE(arch << " seed " << seed << ": old rule fails " << e.failed.size() << " tensors (" << flipped.size()
                   << " not zero in theory), worst " << e.worst_excess << "x on " << e.worst_name << "; "
                   << f.relu << " ReLU and " << f.pool << " pool decisions differ, first "
                   << (f.first.empty() ? "none" : f.first) << "; layer-wise worst " << worst_excess(c)
                   << "x of its bound");
      if (!flipped.empty()) {
        // The failure is a flip: some decision differs between the two forward passes.
        CHECK(f.relu + f.pool > 0);
        ++flip_failures;
      }
    }
  }
  INFO(seeds_run << " seeds run");
  CHECK(flip_failures >= 1);  // else the old rule was not shown failing: widen the seed range
}

TEST_CASE("the layer-wise rule catches an input gradient off by 1e-3 and names only that layer") {
  StepSetup s;
  s.arch = "vgg";
  s.batch = 4;  // not 2: BN over 2 samples passes (almost) no gradient to vgg's dense1
  Mutation m;
  m.layer = "conv2_1";
  m.factor = 1 + kMutation;
  const StepComparison c = compare_step_layerwise(s, record_step(s, Device::cpu, nullptr, ulp_jitter(3), m));
  MESSAGE(c.summary());
  CHECK_FALSE(c.ok);
  CHECK(c.first_forward.empty());
  CHECK(c.first_backward == "conv2_1");
  // The layers below read the wrong gradient on both sides, so they are not blamed.
  CHECK(failed_layers(c) == std::vector<std::string>{"conv2_1"});
}

TEST_CASE("the layer-wise rule catches a weight gradient off by 1e-3 and names its layer") {
  StepSetup s;
  s.arch = "paper";
  s.batch = 2;  // its BNs normalise over 2 * H * W values: not degenerate at batch 2
  Mutation m;
  m.parameter = "conv3.weight";
  m.factor = 1 + kMutation;
  const StepComparison c = compare_step_layerwise(s, record_step(s, Device::cpu, nullptr, ulp_jitter(4), m));
  MESSAGE(c.summary());
  CHECK_FALSE(c.ok);
  CHECK(c.first_backward == "conv3");
  CHECK(failed_layers(c) == std::vector<std::string>{"conv3"});
}

TEST_CASE("a gradient that is zero in theory passes on round-off and fails on a real offset") {
  StepSetup s;
  s.arch = "vgg";
  s.batch = 4;  // not 2: BN over 2 samples passes (almost) no gradient to vgg's dense1
  CHECK(zero_in_theory_parameters(s) == std::vector<std::string>{"dense1.bias"});
  // Unchanged, its values are round-off: far below the weight gradient of the same layer.
  const StepRecord plain = record_step(s, Device::cpu, nullptr, ulp_jitter(5));
  auto largest = [&](const std::string& name) {
    float m = 0;
    for (const auto& g : plain.grads)
      if (g.name == name)
        for (float v : g.values) m = std::max(m, std::fabs(v));
    return m;
  };
  MESSAGE("vgg dense1: max |bias gradient| " << largest("dense1.bias") << ", max |weight gradient| "
                                             << largest("dense1.weight"));
  CHECK(largest("dense1.bias") < 1e-4f * largest("dense1.weight"));
  CHECK(compare_step_layerwise(s, plain).ok);
  // The rule has no blind spot for a real error: an offset of 1e-4 (1e-4 of the layer's largest
  // weight gradient, ~300x the round-off above) fails it.
  Mutation m;
  m.parameter = "dense1.bias";
  m.offset = 1e-4;
  const StepComparison c = compare_step_layerwise(s, record_step(s, Device::cpu, nullptr, ulp_jitter(5), m));
  MESSAGE(c.summary());
  CHECK_FALSE(c.ok);
  CHECK(c.first_backward == "dense1");
  CHECK(failed_layers(c) == std::vector<std::string>{"dense1"});
}

TEST_CASE("the layer-wise rule replays the optimizer step from the candidate's gradients") {
  // This runs the optimizer half of the comparison on the CPU, so that a bug in it does not
  // first show on a GPU machine.
  StepSetup s;
  s.arch = "paper";
  s.batch = 2;
  StepRecord r = record_step(s, Device::cpu, sgd, ulp_jitter(6));
  REQUIRE(!r.state.empty());
  const StepComparison c = compare_step_layerwise(s, r, sgd);
  INFO(c.summary());
  CHECK(c.ok);
  int state_checks = 0;
  for (const Check& k : c.checks) state_checks += k.what.find("after the step") != std::string::npos;
  CHECK(state_checks == (int)r.state.size());
  // An update off by 1e-4 of a weight (an optimizer kernel slightly wrong; the bound is ~8e-6)
  // fails at its layer.
  for (auto& st : r.state)
    if (st.name == "conv5.weight")
      for (float& v : st.values) v *= 1.0f + 1e-4f;
  const StepComparison bad = compare_step_layerwise(s, r, sgd);
  MESSAGE(bad.summary());
  CHECK_FALSE(bad.ok);
  CHECK(failed_layers(bad) == std::vector<std::string>{"conv5"});
}

TEST_CASE("the recorder's cut step equals the whole-graph training step bit for bit") {
  for (const std::string arch : {"paper", "vgg"}) {
    StepSetup s;
    s.arch = arch;
    s.batch = 2;
    const StepRecord cut = record_step(s, Device::cpu, sgd), whole = run_step_whole(s, Device::cpu, sgd);
    INFO(arch);
    CHECK(cut.loss == whole.loss);
    CHECK(bitwise_differences(cut, whole).empty());
    // The check can fail: one gradient one ulp off is seen.
    StepRecord off = whole;
    off.grads.back().values[0] = std::nextafter(off.grads.back().values[0], 1e9f);
    CHECK(bitwise_differences(cut, off) == std::vector<std::string>{off.grads.back().name});
  }
}
