#include "engine/dispatch.h"

#include <dlfcn.h>

#include <string>

#include "base/plugin.h"

namespace emotune {

namespace {

const KernelTable& cpu_table() {
  static const KernelTable t = [] {
    KernelTable t;
    register_cpu_kernels(t);
    return t;
  }();
  return t;
}

// The CUDA backend, loaded on first use (kernels/table.h, CudaBackend): a CPU command of a CUDA
// build never maps cudart or cuBLAS. `error` is why it cannot run, empty when it can.
// The settings the plugin is handed when it is loaded, and its setter once it is (null before).
CudaSettings g_cuda_settings;
decltype(&set_cuda_settings) g_cuda_configure = nullptr;

struct Cuda {
  CudaBackend backend;
  int devices = 0;
  std::string error;
};

const Cuda& cuda() {
  static const Cuda c = [] {
    Cuda c;
#if EMOTUNE_HAS_CUDA
    // The one place the CUDA build switch reaches the engine. A program that links the backend
    // itself (the CUDA tests and benchmarks call kernels directly) already has it: use that copy,
    // so the process holds one allocator and one stream. Everything else loads the plugin.
    using Entry = bool (*)(CudaBackend*, size_t);
    const std::string file = EMOTUNE_CUDA_PLUGIN;
    try {
      auto entry = reinterpret_cast<Entry>(dlsym(RTLD_DEFAULT, "emotune_cuda_backend"));
      if (!entry)
        entry = reinterpret_cast<Entry>(plugin_symbol(plugin_open(file, "device cuda"), "emotune_cuda_backend", file));
      if (!entry(&c.backend, sizeof(CudaBackend)))
        throw Error("device cuda: " + plugin_path(file) +
                    " was built with another kernel table (a plugin from another build; rebuild or "
                    "reinstall emotune)");
      if (c.backend.configure) {
        c.backend.configure(g_cuda_settings);
        g_cuda_configure = c.backend.configure;
      }
      c.devices = c.backend.kernels.device_count ? c.backend.kernels.device_count() : 0;
      if (c.devices == 0) c.error = "device cuda: no CUDA GPU is available on this machine";
    } catch (const Error& e) {
      c.error = e.what();
    }
#else
    c.error = "device cuda: this binary was built without the CUDA backend "
              "(configure with -DEMOTUNE_CUDA=ON on a machine with nvcc)";
#endif
    return c;
  }();
  return c;
}

const KernelTable* g_override[2] = {nullptr, nullptr};

}  // namespace

void cuda_backend_configure(const CudaSettings& s) {
  g_cuda_settings = s;
  if (g_cuda_configure) {
    g_cuda_configure(s);
    return;
  }
#if EMOTUNE_HAS_CUDA
  // Linked into this program (the CUDA tests and benchmarks): its kernels may run without ever
  // going through the table, so the settings go there now.
  using Entry = bool (*)(CudaBackend*, size_t);
  if (auto entry = reinterpret_cast<Entry>(dlsym(RTLD_DEFAULT, "emotune_cuda_backend"))) {
    CudaBackend b;
    if (entry(&b, sizeof(CudaBackend)) && b.configure) b.configure(s);
  }
#endif
}

void override_kernel_table_for_testing(Device d, const KernelTable* table) {
  g_override[static_cast<int>(d)] = table;
}

const KernelTable& kernel_table(Device d) {
  if (const KernelTable* o = g_override[static_cast<int>(d)]) return *o;
  if (d == Device::cpu) return cpu_table();
  const Cuda& c = cuda();
  if (!c.error.empty()) throw Error(c.error);
  return c.backend.kernels;
}

void throw_missing_kernel(const char* op, Device d) {
  throw Error(std::string("op '") + op + "' has no kernel for device " + device_name(d));
}

bool cuda_built() {
#if EMOTUNE_HAS_CUDA
  return true;
#else
  return false;
#endif
}

bool cuda_available() { return cuda_built() && cuda().error.empty(); }

void* alloc_host_pinned(size_t bytes) {
  if (cuda_available()) return cuda().backend.alloc_pinned(bytes);
  return alloc_cpu(bytes);
}

void free_host_pinned(void* p) {
  if (!p) return;
  if (cuda_available()) return cuda().backend.free_pinned(p);
  free_cpu(p);
}

}  // namespace emotune
