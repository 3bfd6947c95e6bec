#include "engine/dispatch.h"

#include <cstdlib>
#include <mutex>
#include <string>

namespace emotune {

namespace {

struct Tables {
  KernelTable cpu, cuda;
  bool cuda_built = false;
  int cuda_devices = 0;
};

const Tables& tables() {
  static const Tables t = [] {
    Tables t;
    register_cpu_kernels(t.cpu);
#if EMOTUNE_HAS_CUDA
    // The one place the CUDA build switch reaches the engine.
    register_cuda_kernels(t.cuda);
    t.cuda_built = true;
    t.cuda_devices = t.cuda.device_count ? t.cuda.device_count() : 0;
#endif
    return t;
  }();
  return t;
}

}  // namespace

const KernelTable& kernel_table(Device d) {
  const Tables& t = tables();
  if (d == Device::cpu) return t.cpu;
  if (!t.cuda_built)
    throw Error("device cuda: this binary was built without the CUDA backend "
                "(configure with -DEMOTUNE_CUDA=ON on a machine with nvcc)");
  if (t.cuda_devices == 0) throw Error("device cuda: no CUDA GPU is available on this machine");
  return t.cuda;
}

void throw_missing_kernel(const char* op, Device d) {
  throw Error(std::string("op '") + op + "' has no kernel for device " + device_name(d));
}

bool cuda_built() { return tables().cuda_built; }
bool cuda_available() { return tables().cuda_built && tables().cuda_devices > 0; }

void* alloc_host_pinned(size_t bytes) {
#if EMOTUNE_HAS_CUDA
  if (cuda_available()) return alloc_pinned_cuda(bytes);
#endif
  return alloc_cpu(bytes);
}

void free_host_pinned(void* p) {
  if (!p) return;
#if EMOTUNE_HAS_CUDA
  if (cuda_available()) return free_pinned_cuda(p);
#endif
  free_cpu(p);
}

}  // namespace emotune
