// kernels/runtime.h on the CPU: aligned allocation, byte copies, device count.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "kernels/runtime.h"
#include "tests/testing.h"

using namespace emotune;
using emotune::testing::allclose;
using emotune::testing::random_vector;

TEST_CASE("runtime: 64-byte aligned allocations, zero size allowed, copy is a byte copy") {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(4096 + 4)}) {
    void* p = alloc_cpu(bytes);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    free_cpu(p);
  }
  const std::vector<float> src = random_vector(100, 5);
  std::vector<float> dst(100);
  copy_cpu(dst.data(), src.data(), 100 * sizeof(float));
  EMOTUNE_CHECK_CLOSE(allclose(dst, src, 0, 0));  // bytes: exact
  CHECK(device_count_cpu() == 1);
}
