// Engine Tensor and dispatch: shapes, storage sharing of views, copies, device moves, the error
// messages users see, and the dispatch table's loud gaps (no CUDA in this build, empty entries).
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/dispatch.h"
#include "engine/ops.h"
#include "engine/tensor.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::contains;
using emotune::testing::error_of;

TEST_CASE("tensor: shape, ndim, dim, numel") {
  Tensor t = Tensor::zeros({2, 3, 4});
  CHECK(t.defined());
  CHECK(t.shape() == Shape{2, 3, 4});
  CHECK(t.ndim() == 3);
  CHECK(t.numel() == 24);
  CHECK(t.dim(0) == 2);
  CHECK(t.dim(-1) == 4);
  CHECK(t.dim(-3) == 2);
  CHECK(t.device() == Device::cpu);
  CHECK(contains(error_of([&] { (void)t.dim(3); }), "[2, 3, 4]"));
  CHECK(contains(error_of([&] { (void)t.dim(-4); }), "out of range"));
  CHECK(shape_str({64, 1, 48, 48}) == "[64, 1, 48, 48]");
  CHECK(shape_str({}) == "[]");
  CHECK(shape_numel({}) == 1);  // a scalar
  CHECK(shape_numel({3, 0, 5}) == 0);
  CHECK(contains(error_of([] { (void)shape_numel({2, -1}); }), "[2, -1]"));

  Tensor none;
  CHECK_FALSE(none.defined());
  CHECK(contains(error_of([&] { (void)none.shape(); }), "undefined"));

  // Zero-element tensors are legal and copy nothing.
  Tensor e = Tensor::zeros({0, 7});
  CHECK(e.numel() == 0);
  CHECK(e.to_vector().empty());
  CHECK(e.clone().shape() == Shape{0, 7});
}

TEST_CASE("tensor: full, zeros, from_vector and to_vector round trip") {
  std::vector<float> v = emotune::testing::random_vector(12, 1);
  Tensor t = Tensor::from_vector({3, 4}, v);
  CHECK(t.to_vector() == v);
  CHECK(Tensor::full({5}, 2.5f).to_vector() == std::vector<float>(5, 2.5f));
  CHECK(Tensor::zeros({4}).to_vector() == std::vector<float>(4, 0.0f));
  t.fill_(-1.0f);
  CHECK(t.to_vector() == std::vector<float>(12, -1.0f));
}

TEST_CASE("tensor: view and reshape share storage; clone does not") {
  std::vector<float> v = emotune::testing::random_vector(24, 2);
  Tensor t = Tensor::from_vector({2, 3, 4}, v);

  Tensor w = t.view({6, 4});
  CHECK(w.shape() == Shape{6, 4});
  CHECK(w.data() == t.data());
  w.data()[5] = 42.0f;  // a write through the view is seen by the original
  CHECK(t.to_vector()[5] == 42.0f);
  CHECK(t.shape() == Shape{2, 3, 4});  // the original keeps its shape

  Tensor r = ops::reshape(t, {4, 6});
  CHECK(r.data() == t.data());
  Tensor f = ops::flatten(t);
  CHECK(f.shape() == Shape{2, 12});
  CHECK(f.data() == t.data());

  std::string msg = error_of([&] { (void)t.view({5, 5}); });
  CHECK(contains(msg, "[2, 3, 4]"));
  CHECK(contains(msg, "[5, 5]"));

  Tensor c = t.clone();
  CHECK(c.data() != t.data());
  CHECK(c.to_vector() == t.to_vector());
  c.data()[0] = -7.0f;
  CHECK(t.to_vector()[0] == v[0]);  // the original is untouched
  t.data()[1] = 9.0f;
  CHECK(c.to_vector()[1] == v[1]);
  // clone carries no autograd history
  Tensor p = Tensor::zeros({2}).set_requires_grad(true);
  Tensor q = ops::scale(p, 2.0f);
  CHECK(q.grad_fn() != nullptr);
  CHECK(q.clone().grad_fn() == nullptr);
  CHECK_FALSE(q.clone().requires_grad());

  // detach shares storage, drops history
  Tensor d = q.detach();
  CHECK(d.data() == q.data());
  CHECK(d.grad_fn() == nullptr);
  CHECK_FALSE(d.requires_grad());
}

TEST_CASE("tensor: to(cpu) on a cpu tensor is the same tensor") {
  Tensor t = Tensor::from_vector({2, 2}, {1, 2, 3, 4});
  Tensor u = t.to(Device::cpu);
  CHECK(u.same(t));
  CHECK(u.data() == t.data());
}

TEST_CASE("tensor: copy_from copies values and checks the element count") {
  Tensor a = Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor b = Tensor::zeros({3, 2});  // same numel, another shape: allowed
  b.copy_from(a);
  CHECK(b.to_vector() == a.to_vector());
  CHECK(b.data() != a.data());
  Tensor c = Tensor::zeros({5});
  std::string msg = error_of([&] { c.copy_from(a); });
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[5]"));
}

TEST_CASE("tensor: from_vector with the wrong number of values names both sizes") {
  std::string msg = error_of([] { (void)Tensor::from_vector({2, 3}, {1, 2, 3, 4, 5}); });
  CHECK(contains(msg, "from_vector"));
  CHECK(contains(msg, "5 values"));
  CHECK(contains(msg, "[2, 3]"));
  msg = error_of([] { (void)Tensor::from_vector({2}, {1, 2, 3}); });
  CHECK(contains(msg, "3 values"));
  CHECK(contains(msg, "[2]"));
}

TEST_CASE("tensor: item() needs exactly one element") {
  CHECK(Tensor::from_vector({1}, {3.5f}).item() == 3.5f);
  CHECK(Tensor::from_vector({1, 1, 1}, {-2.0f}).item() == -2.0f);
  CHECK(Tensor::full({}, 7.0f).item() == 7.0f);
  std::string msg = error_of([] { (void)Tensor::zeros({2, 3}).item(); });
  CHECK(contains(msg, "item"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "not a scalar"));
  CHECK(contains(error_of([] { (void)Tensor::zeros({0}).item(); }), "[0]"));
}

TEST_CASE("tensor: check_same_shape names the operation and both shapes") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), c = Tensor::zeros({2, 3});
  CHECK_NOTHROW(check_same_shape(a, c, "thing"));
  std::string msg = error_of([&] { check_same_shape(a, b, "my_op"); });
  CHECK(contains(msg, "my_op"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
  // ops that require equal shapes go through it
  msg = error_of([&] { (void)ops::add(a, b); });
  CHECK(contains(msg, "add"));
  CHECK(contains(msg, "[2, 3]"));
  CHECK(contains(msg, "[3, 2]"));
  msg = error_of([&] { (void)ops::mul(a, Tensor::zeros({6})); });
  CHECK(contains(msg, "mul"));
  CHECK(contains(msg, "[6]"));
  CHECK_NOTHROW(check_same_device(a, b, "x"));
}

TEST_CASE("device: names and parsing") {
  CHECK(std::string(device_name(Device::cpu)) == "cpu");
  CHECK(std::string(device_name(Device::cuda)) == "cuda");
  CHECK(parse_device("cpu") == Device::cpu);
  CHECK(parse_device("cuda") == Device::cuda);
  try {
    (void)parse_device("tpu");
    FAIL("parse_device accepted 'tpu'");
  } catch (const std::invalid_argument& e) {
    CHECK(contains(e.what(), "tpu"));
  }
}

TEST_CASE("dispatch: the cuda table is refused with the reason when it cannot run") {
  if (cuda_available()) {
    // A CUDA build on a machine with a GPU: the table exists; nothing to refuse.
    CHECK(cuda_built());
    CHECK_NOTHROW((void)kernel_table(Device::cuda));
    return;
  }
  std::string msg = error_of([] { (void)kernel_table(Device::cuda); });
  REQUIRE_FALSE(msg.empty());
  CHECK(contains(msg, "cuda"));
  if (!cuda_built()) CHECK(contains(msg, "built without"));
  else CHECK(contains(msg, "no CUDA GPU"));
  // and everything that would touch the device reports the same reason
  CHECK(error_of([] { (void)Tensor::zeros({2}, Device::cuda); }) == msg);
  CHECK(error_of([] { (void)Tensor::zeros({2}).to(Device::cuda); }) == msg);
  CHECK((kernel_table(Device::cpu).conv2d_forward != nullptr));
}

TEST_CASE("dispatch: an empty table entry names the op and the device") {
  KernelTable empty;  // every entry null: a backend that lacks the op
  std::string msg = error_of([&] {
    (void)checked_kernel(empty.conv2d_forward, "conv2d_forward", Device::cuda);
  });
  CHECK(msg == "op 'conv2d_forward' has no kernel for device cuda");
  msg = error_of([&] { (void)checked_kernel(empty.relu_forward, "relu_forward", Device::cpu); });
  CHECK(msg == "op 'relu_forward' has no kernel for device cpu");
  msg = error_of([] { throw_missing_kernel("adam_update", Device::cuda); });
  CHECK(msg == "op 'adam_update' has no kernel for device cuda");
  // A filled entry passes through unchanged.
  auto fn = checked_kernel(kernel_table(Device::cpu).relu_forward, "relu_forward", Device::cpu);
  CHECK((fn == kernel_table(Device::cpu).relu_forward));
  // The macro resolves the right entry of the cpu table.
  CHECK((EMOTUNE_KERNEL(Device::cpu, add) == kernel_table(Device::cpu).add));
}

TEST_CASE("dispatch: every CPU entry is filled") {
  const KernelTable& t = kernel_table(Device::cpu);
  CHECK((t.alloc != nullptr)); CHECK((t.free != nullptr)); CHECK((t.copy_from_host != nullptr)); CHECK((t.copy_to_host != nullptr)); CHECK((t.copy != nullptr));
  CHECK((t.conv2d_forward != nullptr)); CHECK((t.conv2d_backward_input != nullptr)); CHECK((t.conv2d_backward_weight != nullptr));
  CHECK((t.max_pool2d_forward != nullptr)); CHECK((t.max_pool2d_backward != nullptr));
  CHECK((t.batch_norm_forward_train != nullptr)); CHECK((t.batch_norm_forward_eval != nullptr)); CHECK((t.batch_norm_backward != nullptr));
  CHECK((t.batch_norm_relu_forward_train != nullptr)); CHECK((t.batch_norm_relu_backward != nullptr));
  CHECK((t.dropout_forward != nullptr)); CHECK((t.dropout_backward != nullptr));
  CHECK((t.linear_forward != nullptr)); CHECK((t.linear_backward != nullptr)); CHECK((t.softmax_cross_entropy != nullptr));
  CHECK((t.fill != nullptr)); CHECK((t.add != nullptr)); CHECK((t.axpy != nullptr)); CHECK((t.mul != nullptr)); CHECK((t.scale != nullptr)); CHECK((t.scale_dev != nullptr));
  CHECK((t.relu_forward != nullptr)); CHECK((t.relu_backward != nullptr)); CHECK((t.sum_squares != nullptr));
  CHECK((t.sgd_update != nullptr)); CHECK((t.adam_update != nullptr));
}

TEST_CASE("dispatch: pinned host buffers fall back to plain memory without a GPU") {
  void* p = alloc_host_pinned(1024);
  REQUIRE(p != nullptr);
  static_cast<char*>(p)[1023] = 1;  // writable to its end
  free_host_pinned(p);
  free_host_pinned(nullptr);  // a no-op
}
