// Comparing one training step of a network on two devices (or two runs of one device), layer by
// layer, so that a failure names the layer whose kernel is wrong and only that.
//
// Why not compare the final gradients of two full steps (the rule test_cuda_train_step used
// until 2026-12): a ReLU input or a max-pool window within an ulp of its kink or tie flips on a
// 1-ulp difference upstream, and every gradient below that layer then differs by tens to
// hundreds of times any round-off tolerance. At batch 8 both shipped networks have 15-20 such
// elements within 1e-6 of the layer's maximum (measured for issue 4), so that rule fails on
// correct kernels; test_train_step.cpp shows it on the CPU alone, with the input and every kernel
// output perturbed by 1e-7.
//
// The rule here: the candidate records, for every child of the Sequential, the input it read, the
// output it produced, the gradient that reached its output and the gradient it passed to its
// input, plus every parameter gradient and the state after the optimizer step. The reference
// (the CPU) then replays each child on the candidate's own input and the candidate's own upstream
// gradient, and each output is compared with the candidate's. Each layer is thus judged from
// identical inputs: a ReLU mask or a pool argmax is a function of the layer's input alone (the
// CPU and CUDA kernels share the tie rule, kernels/cpu/max_pool2d_ref.h), so no decision can
// differ and no flip upstream can reach a later comparison; what is left is one kernel's
// round-off, which a tight bound covers. A wrong kernel fails at its own layer and, because the
// layers below it are fed the candidate's (wrong) gradient on both sides, nowhere else.
// Chosen over "reuse the other side's masks and argmaxes in a full reference step" because that
// would need hooks inside ops.cpp, and over "exclude elements near a kink" because any margin is
// a guess and still leaves the flipped gradient to propagate.
//
// Gradients that are exactly zero in theory get their own rule: the bias of a Linear or Conv2d
// whose output feeds a training-mode BatchNorm (vgg's dense1.bias) has gradient sum(g) where BN's
// input gradient g sums to zero over each channel; the computed value is pure round-off, so a
// bound relative to the tensor's largest element means nothing. Each element is instead compared
// against the worst-case rounding of a float sum of its L terms, L * eps * sum |g|.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "engine/optim.h"
#include "engine/tensor.h"

namespace emotune {
class Sequential;
}

namespace emotune::testing {

// The fixed setup of the step tests: network seed, dropout step, 7 classes, label smoothing.
struct StepSetup {
  std::string arch = "paper";
  int batch = 8;
  uint64_t input_seed = 11;  // the images: uniform [0, 1) from this seed
  float lr = 0.05f;          // of make_optimizer's one step (in training the schedule owns it)
};

// Images [batch, 1, 48, 48] and one-hot targets [batch, 7] of a setup.
std::vector<float> step_images(const StepSetup& s);
std::vector<float> step_targets(const StepSetup& s);
// make_network(arch, 7, 42), with the dropout step set as the recorder sets it.
std::shared_ptr<Sequential> step_network(const StepSetup& s);

// Test hooks of the recorder. Jitter multiplies values by (1 + rel * u), u in [-1, 1) a hash of
// the value, the seed and the place (equal values stay equal, so exact ties stay ties): `input`
// the images; `activations` each child's output and `gradients` each gradient a backward
// produced (input and parameter gradients, the logits' gradient), as recorded and as read by the
// next child. It stands for a device whose every kernel rounds differently. Mutation changes one
// recorded gradient (after the jitter), standing for a backward kernel that is slightly wrong;
// the layers below read the changed gradient.
struct Jitter {
  double input = 0, activations = 0, gradients = 0;
  uint64_t seed = 1;
};
struct Mutation {
  std::string layer;      // a child name ("conv2_1"): its input gradient is changed ...
  std::string parameter;  // ... or a parameter name ("conv3_2.weight"): its gradient is changed
  double factor = 1.0;    // every element becomes factor * value + offset
  double offset = 0.0;
};

struct LayerRecord {
  std::string name;
  Shape in_shape, out_shape;
  std::vector<float> input, output;  // forward: what the child read and wrote
  std::vector<float> grad_output;  // backward: the gradient fed to it (after any jitter)
  std::vector<float> grad_input;   // the gradient it computed for its input (empty for the first)
};

struct NamedValues {
  std::string name;
  std::vector<float> values;
};

struct StepRecord {
  std::vector<LayerRecord> layers;    // forward order
  std::vector<float> logits;          // what the loss read (the last child's output)
  std::vector<float> logits_grad;     // its gradient, as computed (before any jitter)
  float loss = 0;                     // cross-entropy + penalties
  std::vector<NamedValues> grads;     // per parameter, in net->parameters() order
  std::vector<NamedValues> state;     // state_dict after the optimizer step (empty without one)
};

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<ParamRef>)>;

// One training step of step_network(s) on `device`, child by child: forward, softmax
// cross-entropy (smoothing 0.1) + the network's penalty, backward, then make_optimizer's step
// when given. The gradients are those of an ordinary whole-graph backward (each child's output
// gradient is passed on unchanged unless jittered), so the record is the real step.
StepRecord record_step(const StepSetup& s, Device device, const MakeOptimizer& make_optimizer = nullptr,
                       const Jitter& jitter = {}, const Mutation& mutation = {});

// The same step as training runs it: one whole-graph forward and backward from the images, no
// cuts and no host copies between layers; fills loss, grads and (with an optimizer) state only.
// Kernels are run-to-run deterministic on both devices (docs/results.md#determinism) and the
// recorder's cuts change no kernel input, so its gradients and state must equal record_step's bit
// for bit: this checks what the cuts bypass (autograd's passing and accumulation of gradients
// between layers, and, on the GPU, work queued without a host synchronisation in between).
StepRecord run_step_whole(const StepSetup& s, Device device, const MakeOptimizer& make_optimizer = nullptr);
// The names of the gradients and state tensors that differ in any bit (or in size, or are
// missing) between two records of the same setup.
std::vector<std::string> bitwise_differences(const StepRecord& a, const StepRecord& b);

// One comparison: a layer's forward output, input gradient, a parameter gradient, the loss, the
// logits gradient, or a state tensor after the optimizer step.
struct Check {
  std::string layer, what;  // "conv2_1", "input gradient"
  bool ok = true;
  double excess = 0;        // worst |got - want| / bound (> 1 fails)
  std::string message;      // allclose's report
};

struct StepComparison {
  bool ok = true;
  std::vector<Check> checks;         // forward order, then the loss, then backward order
  std::string first_forward;         // first child whose forward differs ("" if none)
  std::string first_backward;        // first child, from the loss down, whose backward differs
  std::string summary() const;       // one line per failed check, then the two names
};

// Replays every child of the candidate's step on the CPU from the candidate's own inputs and
// upstream gradients (see the header comment) and compares; with make_optimizer, also applies
// the reference optimizer to the candidate's gradients and compares the state after the step.
StepComparison compare_step_layerwise(const StepSetup& s, const StepRecord& candidate,
                                      const MakeOptimizer& make_optimizer = nullptr);

// Parameters whose gradient is exactly zero in theory (the header's rule), e.g. {"dense1.bias"}
// for vgg.
std::vector<std::string> zero_in_theory_parameters(const StepSetup& s);

// The old rule, for the record: every parameter gradient of two full steps within
// 1e-3 * max|want| + 1e-7 + 1e-3 |want|. Lists the gradient tensors outside it, with the worst
// excess over the bound (for messages); flips make it fail on correct kernels.
struct EndToEnd {
  std::vector<std::string> failed;
  double worst_excess = 0;
  std::string worst_name;
};
EndToEnd compare_step_end_to_end(const StepRecord& got, const StepRecord& want);

// How many ReLU masks (input > 0) and max-pool argmaxes differ between two records of the same
// setup, and the first layer (forward order) where one does, e.g. "relu1_2: 1 mask". The pool
// windows are taken as non-overlapping (kernel = stride = in / out), as in both shipped networks.
// A diagnosis for the end-to-end rule: it explains its failures; it judges no kernel.
struct Flips {
  int64_t relu = 0, pool = 0;
  std::string first;
};
Flips decision_flips(const StepSetup& s, const StepRecord& a, const StepRecord& b);

}  // namespace emotune::testing
