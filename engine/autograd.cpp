#include "engine/autograd.h"

#include <unordered_map>
#include <unordered_set>

#include "engine/dispatch.h"

namespace emotune {

namespace {
thread_local bool g_grad_enabled = true;

// dst += src on dst's device (both same shape and device).
void accumulate(Tensor& dst, const Tensor& src) {
  EMOTUNE_KERNEL(dst.device(), axpy)(dst.numel(), 1.0f, src.data(), dst.data());
}
}  // namespace

bool grad_enabled() { return g_grad_enabled; }

NoGradGuard::NoGradGuard() : previous_(g_grad_enabled) { g_grad_enabled = false; }
NoGradGuard::~NoGradGuard() { g_grad_enabled = previous_; }

bool needs_grad(std::initializer_list<const Tensor*> inputs) {
  if (!g_grad_enabled) return false;
  for (const Tensor* t : inputs)
    if (t && t->defined() && t->requires_grad()) return true;
  return false;
}

void record(Tensor& output, const char* op, std::vector<Tensor> inputs,
            std::function<std::vector<Tensor>(const Tensor&)> backward) {
  auto node = std::make_shared<Node>();
  node->op = op;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  output.set_grad_fn(std::move(node));
  output.impl()->requires_grad = true;
}

void run_backward(const Tensor& root, const Tensor& seed) {
  if (!root.requires_grad())
    throw Error("backward: the tensor does not require grad (no parameter reached it, or it was "
                "computed under NoGradGuard)");
  check_same_shape(root, seed, "backward seed");

  // Topological order of the tensors reachable through grad_fn (iterative DFS: deep nets must
  // not overflow the stack).
  std::vector<TensorImpl*> order;
  std::unordered_map<TensorImpl*, Tensor> handle;
  std::unordered_set<TensorImpl*> visited;
  struct Frame { Tensor t; size_t next; };
  std::vector<Frame> stack{{root, 0}};
  visited.insert(root.impl());
  while (!stack.empty()) {
    Frame& f = stack.back();
    const auto& fn = f.t.grad_fn();
    if (fn && f.next < fn->inputs.size()) {
      const Tensor& in = fn->inputs[f.next++];
      if (in.defined() && in.requires_grad() && visited.insert(in.impl()).second)
        stack.push_back({in, 0});
      continue;
    }
    order.push_back(f.t.impl());
    handle[f.t.impl()] = f.t;
    stack.pop_back();
  }

  // Pending gradients of intermediate tensors; leaves accumulate into .grad.
  std::unordered_map<TensorImpl*, Tensor> pending;
  pending[root.impl()] = seed;
  NoGradGuard no_grad;
  for (auto it = order.rbegin(); it != order.rend(); ++it) {
    Tensor t = handle[*it];
    auto p = pending.find(*it);
    if (p == pending.end()) continue;  // nothing flowed here
    Tensor g = p->second;
    pending.erase(p);
    const auto& fn = t.grad_fn();
    if (!fn) {  // a leaf: accumulate into its .grad
      Tensor cur = t.grad();
      if (!cur.defined()) t.set_grad(g.clone());
      else accumulate(cur, g);
      continue;
    }
    std::vector<Tensor> grads = fn->backward(g);
    if (grads.size() != fn->inputs.size())
      throw Error(std::string("autograd: backward of '") + fn->op + "' returned " +
                  std::to_string(grads.size()) + " gradients for " +
                  std::to_string(fn->inputs.size()) + " inputs");
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& in = fn->inputs[i];
      if (!grads[i].defined() || !in.defined() || !in.requires_grad()) continue;
      check_same_shape(in, grads[i], fn->op);
      auto q = pending.find(in.impl());
      if (q == pending.end()) pending[in.impl()] = grads[i];
      else {
        // The first gradient may alias a tensor another node still reads: sum into a copy.
        Tensor sum = q->second.clone();
        accumulate(sum, grads[i]);
        q->second = sum;
      }
    }
  }
}

}  // namespace emotune
