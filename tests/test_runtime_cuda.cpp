// CUDA runtime pieces: the dispatch-table row is complete, device discovery never fails, copies
// round-trip, and the caching allocator makes no cudaMalloc once warmed up (also across a full
// conv2d forward + backward, whose scratch buffers come from the same allocator).
#include <doctest/doctest.h>

#include <cstring>
#include <vector>

#include "engine/dispatch.h"
#include "engine/runtime.h"
#include "kernels/conv2d.h"
#include "kernels/runtime.h"
#include "kernels/table.h"
#include "tests/cuda_testing.h"
#include "tests/shapes.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::DeviceBuffer;

// Needs no GPU: the settings are plain values. This program links the backend and calls its
// kernels directly, so runtime_configure must reach that copy without going through the table
// (engine/dispatch.cpp, cuda_backend_configure), as EMOTUNE_CONV_TUNE=0 in scripts/gpu-check.sh
// expects of the CUDA tests.
TEST_CASE("cuda: runtime_configure hands EMOTUNE_CUDA_SYNC and EMOTUNE_CONV_TUNE to the linked backend") {
  const RuntimeSettings saved = runtime_settings();
  // doctest_main configured the settings from the environment before any test ran.
  CHECK(cuda_settings().launch_sync == saved.cuda_sync);
  CHECK(cuda_settings().conv_tune == saved.cuda_conv_tune);
  RuntimeSettings s = saved;
  s.cuda_sync = !saved.cuda_sync;
  s.cuda_conv_tune = !saved.cuda_conv_tune;
  runtime_configure(s);
  CHECK(cuda_settings().launch_sync == s.cuda_sync);
  CHECK(cuda_settings().conv_tune == s.cuda_conv_tune);
  runtime_configure(saved);
  CHECK(cuda_settings().launch_sync == saved.cuda_sync);
  CHECK(cuda_settings().conv_tune == saved.cuda_conv_tune);
  CudaBackend b;
  REQUIRE(emotune_cuda_backend(&b, sizeof(CudaBackend)));
  const bool exported = b.configure != nullptr;  // a bool first: doctest cannot print a function pointer
  CHECK(exported);
}

// Needs no GPU: filling the table only takes function addresses.
TEST_CASE("cuda: register_cuda_kernels fills every entry of the dispatch table") {
  KernelTable t;
  register_cuda_kernels(t);
// Compared into a bool first: doctest cannot print a function pointer.
#define EMOTUNE_EXPECT_ENTRY(field)                                 \
  do {                                                              \
    const bool filled = t.field != nullptr;                         \
    CHECK_MESSAGE(filled, "missing CUDA kernel: " #field);          \
  } while (0)
  EMOTUNE_EXPECT_ENTRY(alloc);
  EMOTUNE_EXPECT_ENTRY(free);
  EMOTUNE_EXPECT_ENTRY(copy_from_host);
  EMOTUNE_EXPECT_ENTRY(copy_to_host);
  EMOTUNE_EXPECT_ENTRY(copy);
  EMOTUNE_EXPECT_ENTRY(device_count);
  EMOTUNE_EXPECT_ENTRY(synchronize);
  EMOTUNE_EXPECT_ENTRY(conv2d_forward);
  EMOTUNE_EXPECT_ENTRY(conv2d_backward_input);
  EMOTUNE_EXPECT_ENTRY(conv2d_backward_weight);
  EMOTUNE_EXPECT_ENTRY(max_pool2d_forward);
  EMOTUNE_EXPECT_ENTRY(max_pool2d_backward);
  EMOTUNE_EXPECT_ENTRY(batch_norm_forward_train);
  EMOTUNE_EXPECT_ENTRY(batch_norm_forward_eval);
  EMOTUNE_EXPECT_ENTRY(batch_norm_backward);
  EMOTUNE_EXPECT_ENTRY(dropout_forward);
  EMOTUNE_EXPECT_ENTRY(dropout_backward);
  EMOTUNE_EXPECT_ENTRY(linear_forward);
  EMOTUNE_EXPECT_ENTRY(linear_backward);
  EMOTUNE_EXPECT_ENTRY(softmax_cross_entropy);
  EMOTUNE_EXPECT_ENTRY(fill);
  EMOTUNE_EXPECT_ENTRY(add);
  EMOTUNE_EXPECT_ENTRY(axpy);
  EMOTUNE_EXPECT_ENTRY(mul);
  EMOTUNE_EXPECT_ENTRY(scale);
  EMOTUNE_EXPECT_ENTRY(scale_dev);
  EMOTUNE_EXPECT_ENTRY(relu_forward);
  EMOTUNE_EXPECT_ENTRY(relu_backward);
  EMOTUNE_EXPECT_ENTRY(sum_squares);
  EMOTUNE_EXPECT_ENTRY(sgd_update);
  EMOTUNE_EXPECT_ENTRY(adam_update);
#undef EMOTUNE_EXPECT_ENTRY
  const bool memory_mapped = t.alloc == &alloc_cuda && t.free == &free_cuda &&
                             t.copy_from_host == &copy_h2d_cuda && t.copy_to_host == &copy_d2h_cuda &&
                             t.copy == &copy_d2d_cuda;
  CHECK(memory_mapped);
}

// Needs no GPU either: on a machine without one this is the path that must not fail.
TEST_CASE("cuda: device_count_cuda reports 0 instead of failing when there is no GPU") {
  int n = -1;
  CHECK_NOTHROW(n = device_count_cuda());
  CHECK(n >= 0);
  CHECK((n > 0) == cuda_available());
  MESSAGE("CUDA devices: " << n);
}

TEST_CASE("cuda: copies host -> device -> device -> host round-trip exactly") {
  if (!emotune::testing::cuda_or_skip("cuda copies")) return;
  const std::vector<float> v = testing::random_vector(100003, 3);
  DeviceBuffer a(v), b(v.size());
  copy_d2d_cuda(b.ptr, a.ptr, v.size() * sizeof(float));
  const std::vector<float> back = b.host();
  CHECK(std::memcmp(back.data(), v.data(), v.size() * sizeof(float)) == 0);
  synchronize_cuda();
}

TEST_CASE("cuda: the caching allocator makes no cudaMalloc after warm-up") {
  if (!emotune::testing::cuda_or_skip("cuda caching allocator")) return;
  const std::vector<size_t> sizes = {4, 1000, 4096, 4097, 1 << 20, (3 << 20) + 5, 100 << 20};
  auto cycle = [&] {
    std::vector<void*> ptrs;
    for (size_t s : sizes) {
      void* p = alloc_cuda(s);
      REQUIRE(p != nullptr);
      CHECK(reinterpret_cast<uintptr_t>(p) % 256 == 0);  // float4 kernels rely on 16-byte alignment
      ptrs.push_back(p);
    }
    for (void* p : ptrs) free_cuda(p);
  };
  const CudaAllocatorStats before = cuda_allocator_stats();
  cycle();  // warm-up: may call cudaMalloc
  const CudaAllocatorStats warm = cuda_allocator_stats();
  for (int i = 0; i < 20; ++i) cycle();
  const CudaAllocatorStats after = cuda_allocator_stats();
  CHECK(after.malloc_calls == warm.malloc_calls);
  CHECK(after.bytes_reserved == warm.bytes_reserved);
  CHECK(after.bytes_in_use == before.bytes_in_use);
  CHECK(alloc_cuda(0) == nullptr);
  free_cuda(nullptr);  // a no-op
  CHECK_THROWS_AS(free_cuda(reinterpret_cast<void*>(0x1234)), emotune::Error);
  MESSAGE("cudaMalloc calls: " << warm.malloc_calls << ", reserved " << warm.bytes_reserved << " bytes");
}

TEST_CASE("cuda: a conv2d forward + backward step allocates nothing new after the first step") {
  if (!emotune::testing::cuda_or_skip("cuda allocator across conv2d steps")) return;
  for (const auto& c : testing::conv_cases()) {
    if (!c.real) continue;
    Conv2dShape p = c.shape;
    p.n = testing::sanitize_quick() ? 1 : 4;
    DeviceBuffer x(testing::random_vector(p.x_size(), 1)), w(testing::random_vector(p.w_size(), 2));
    DeviceBuffer b(testing::random_vector(p.k, 3)), dy(testing::random_vector(p.y_size(), 4));
    DeviceBuffer y(p.y_size()), dx(p.x_size()), dw(p.w_size()), db(p.k);
    auto step = [&] {
      conv2d_forward_cuda(p, x.ptr, w.ptr, b.ptr, y.ptr);
      conv2d_backward_input_cuda(p, dy.ptr, w.ptr, dx.ptr);
      conv2d_backward_weight_cuda(p, x.ptr, dy.ptr, dw.ptr, db.ptr);
    };
    step();  // first step: tuning and scratch buffers
    const size_t warm = cuda_allocator_stats().malloc_calls;
    for (int i = 0; i < (testing::sanitize_quick() ? 2 : 5); ++i) step();
    synchronize_cuda();
    INFO(c.name);
    CHECK(cuda_allocator_stats().malloc_calls == warm);
  }
}

TEST_CASE("cuda: pinned host memory is usable for copies and freed cleanly") {
  if (!emotune::testing::cuda_or_skip("cuda pinned memory")) return;
  const size_t n = 1 << 16;
  float* h = static_cast<float*>(alloc_pinned_cuda(n * sizeof(float)));
  REQUIRE(h != nullptr);
  for (size_t i = 0; i < n; ++i) h[i] = (float)i;
  DeviceBuffer d(n);
  copy_h2d_cuda(d.ptr, h, n * sizeof(float));
  const std::vector<float> back = d.host();
  CHECK(back[n - 1] == (float)(n - 1));
  free_pinned_cuda(h);
  free_pinned_cuda(nullptr);
}
