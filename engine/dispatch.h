// The op x device dispatch table (kernels/table.h) and its loud gaps.
//   EMOTUNE_KERNEL(dev, conv2d_forward)(shape, x, w, b, y);
// looks the op up in the table of `dev` and throws emotune::Error("op 'conv2d_forward' has no
// kernel for device cuda") when the entry is empty, or when the device was not built in.
#pragma once
#include <cstddef>

#include "base/error.h"
#include "engine/device.h"
#include "kernels/table.h"

namespace emotune {

// The table for a device; throws when the backend is not built in or has no device present.
const KernelTable& kernel_table(Device d);
[[noreturn]] void throw_missing_kernel(const char* op, Device d);

// Tests only: serve device `d` from `table` instead of its backend, until called again with
// nullptr. Lets a CPU-only build run engine and trainer code against a fake device (e.g. one
// whose host-to-device copies complete only at the next synchronisation: test_upload_order).
// Not thread-safe against concurrent dispatch; set it before the code under test runs.
void override_kernel_table_for_testing(Device d, const KernelTable* table);

// True when this binary has the CUDA backend and a GPU is present.
bool cuda_available();
// True when the CUDA backend was compiled in (a GPU may still be absent).
bool cuda_built();

// The CUDA backend's start-up settings (kernels/runtime.h; engine/runtime.h's runtime_configure
// calls this). Kept and handed to the plugin when it is loaded, or at once when the backend is
// already in the process (loaded, or linked by a CUDA test or benchmark that calls its kernels
// directly). Never loads the plugin itself: a CPU command never maps cudart.
void cuda_backend_configure(const CudaSettings& s);

// Page-locked host memory for batch buffers when CUDA is available, plain memory otherwise.
void* alloc_host_pinned(size_t bytes);
void free_host_pinned(void* p);

template <typename Fn>
inline Fn checked_kernel(Fn fn, const char* op, Device d) {
  if (!fn) throw_missing_kernel(op, d);
  return fn;
}

}  // namespace emotune

#define EMOTUNE_KERNEL(dev, op) ::emotune::checked_kernel(::emotune::kernel_table(dev).op, #op, dev)
