// Define-by-run reverse-mode autograd. An op that produces a tensor from inputs that require
// gradients attaches a Node: the inputs, and a backward function that maps the output gradient
// to one gradient per input (an undefined Tensor where an input gets none). Tensor::backward()
// orders the graph topologically and runs each Node once, accumulating gradients with += into
// leaves (parameters) and into pending sums for intermediate tensors.
// All backward rules live in engine/ops.cpp, next to their forward.
#pragma once
#include <functional>
#include <memory>
#include <vector>

#include "engine/tensor.h"

namespace emotune {

struct Node {
  const char* op = "";
  std::vector<Tensor> inputs;
  std::function<std::vector<Tensor>(const Tensor& grad_output)> backward;
};

// Gradients are recorded only while this is true (per thread).
bool grad_enabled();

// Turns recording off for its lifetime (inference, evaluation, optimizer steps).
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// True when an op on these inputs must record a Node.
bool needs_grad(std::initializer_list<const Tensor*> inputs);

// Attaches `node` to `output` (marks it requires_grad) when recording is on.
void record(Tensor& output, const char* op, std::vector<Tensor> inputs,
            std::function<std::vector<Tensor>(const Tensor&)> backward);

// Runs backward from `root` with initial gradient `seed` (same shape as root).
void run_backward(const Tensor& root, const Tensor& seed);

}  // namespace emotune
