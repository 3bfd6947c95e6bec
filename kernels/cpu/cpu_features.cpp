#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_packed.h"

#include <cblas.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#define EMOTUNE_X86 1
#else
#define EMOTUNE_X86 0
#endif

namespace emotune {

namespace {
constexpr const char* kMarker = "EMOTUNE_BLAS_REEXEC";  // "<openblas' core>-><core we set>"

// Why the last cpu_path_init did not re-exec although it wanted to (exec failed); empty otherwise.
std::string& exec_failure() {
  static std::string s;
  return s;
}

// What the last cpu_path_init was given (cpu_path_current says who chose the core from it).
CpuPathInputs& path_inputs() {
  static CpuPathInputs in;
  return in;
}

const char* or_null(const std::string& s) { return s.empty() ? nullptr : s.c_str(); }

std::string lower(std::string s) {
  for (char& c : s) c = (char)std::tolower((unsigned char)c);
  return s;
}

#if EMOTUNE_X86
unsigned long long xgetbv0() {
  unsigned eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return ((unsigned long long)edx << 32) | eax;
}
#endif
}  // namespace

const char* cpu_isa_name(CpuIsa isa) {
  switch (isa) {
    case CpuIsa::avx512: return "avx512";
    case CpuIsa::avx2: return "avx2";
    default: return "generic";
  }
}

CpuIsa CpuFeatures::best() const {
  if (avx512f && avx512bw && avx512dq && avx512vl && os_avx512 && avx2 && fma) return CpuIsa::avx512;
  if (avx2 && fma && os_avx) return CpuIsa::avx2;
  return CpuIsa::generic;
}

CpuFeatures cpu_features_detect() {
  CpuFeatures f;
#if EMOTUNE_X86
  unsigned a, b, c, d;
  if (!__get_cpuid(0, &a, &b, &c, &d)) return f;
  const unsigned max_leaf = a;
  char vendor[13] = {};
  std::memcpy(vendor, &b, 4);
  std::memcpy(vendor + 4, &d, 4);
  std::memcpy(vendor + 8, &c, 4);
  f.vendor = vendor;
  __get_cpuid(1, &a, &b, &c, &d);
  const int base_family = (a >> 8) & 0xf, base_model = (a >> 4) & 0xf;
  f.family = base_family == 0xf ? base_family + ((a >> 20) & 0xff) : base_family;
  f.model = (base_family == 0x6 || base_family == 0xf) ? base_model + (((a >> 16) & 0xf) << 4) : base_model;
  f.sse3 = c & (1u << 0);
  f.fma = c & (1u << 12);
  f.avx = c & (1u << 28);
  const bool osxsave = c & (1u << 27);
  if (osxsave) {
    const unsigned long long xcr0 = xgetbv0();
    f.os_avx = (xcr0 & 0x6) == 0x6;       // XMM + YMM state
    f.os_avx512 = (xcr0 & 0xe6) == 0xe6;  // + opmask, ZMM_Hi256, Hi16_ZMM
    f.os_amx = (xcr0 & 0x60000) == 0x60000;  // XTILECFG + XTILEDATA (Linux grants use per process: arch_prctl)
  }
  if (max_leaf >= 7) {
    __cpuid_count(7, 0, a, b, c, d);
    f.avx2 = b & (1u << 5);
    f.avx512f = b & (1u << 16);
    f.avx512dq = b & (1u << 17);
    f.avx512bw = b & (1u << 30);
    f.avx512vl = b & (1u << 31);
    f.amx_bf16 = d & (1u << 22);
    f.amx_tile = d & (1u << 24);
    __cpuid_count(7, 1, a, b, c, d);
    f.avx512_bf16 = a & (1u << 5);
  }
#endif
  return f;
}

bool cpu_has_avx512() {
  static const bool yes = cpu_features_detect().best() == CpuIsa::avx512;
  return yes;
}

std::string blas_core_name() {
  const char* name = openblas_get_corename();
  return name ? name : "unknown";
}

CpuIsa blas_core_isa(const std::string& core) {
  const std::string c = lower(core);
  if (c == "skylakex" || c == "cooperlake" || c == "sapphirerapids") return CpuIsa::avx512;
  if (c == "haswell" || c == "zen") return CpuIsa::avx2;
  return CpuIsa::generic;
}

BlasCoreChoice blas_core_choose(CpuIsa cpu, const std::string& current_core, const char* user_coretype,
                                const char* marker, const char* path_env) {
  const CpuIsa have = blas_core_isa(current_core);
  if (user_coretype && *user_coretype)
    return {"", std::string("OPENBLAS_CORETYPE=") + user_coretype + " is set: kept"};
  if (marker && *marker) return {"", std::string("already re-executed (") + marker + "): kept"};
  if (path_env && std::strcmp(path_env, "generic") == 0)
    return {"", "EMOTUNE_CPU_PATH=generic: OpenBLAS' own choice kept"};
  if (have >= cpu) return {"", "OpenBLAS' own choice matches the CPU"};
  const char* core = cpu == CpuIsa::avx512 ? "SkylakeX" : "Haswell";
  return {core, "OpenBLAS chose " + current_core + " (" + cpu_isa_name(have) + ") on an " +
                    cpu_isa_name(cpu) + " CPU: re-executing with OPENBLAS_CORETYPE=" + core};
}

void cpu_path_init(const CpuPathInputs& in, char** argv) {
  path_inputs() = in;
  const std::string current = !in.test_core.empty() ? in.test_core : blas_core_name();
  const BlasCoreChoice choice = blas_core_choose(cpu_features_detect().best(), current, or_null(in.openblas_coretype),
                                                 or_null(in.reexec_marker), or_null(in.cpu_path));
  if (choice.set_core.empty()) return;
  const std::string marker = current + "->" + choice.set_core;
  // The marker is set before the exec so that the new image never re-executes again, even if
  // OpenBLAS rejected the forced core and fell back to a weak one.
  if (setenv("OPENBLAS_CORETYPE", choice.set_core.c_str(), 1) != 0 || setenv(kMarker, marker.c_str(), 1) != 0) {
    exec_failure() = "setenv failed: " + std::string(std::strerror(errno));
    return;
  }
  execv("/proc/self/exe", argv);
  // Only reached when the exec failed: undo, so that children are not told a core was forced.
  exec_failure() = "re-exec with OPENBLAS_CORETYPE=" + choice.set_core + " failed: " + std::strerror(errno);
  unsetenv("OPENBLAS_CORETYPE");
  unsetenv(kMarker);
}

CpuPath cpu_path_current() {
  CpuPath p;
  p.cpu = cpu_features_detect();
  p.cpu_isa = p.cpu.best();
  p.blas_core = blas_core_name();
  p.blas_isa = blas_core_isa(p.blas_core);
  const char* user = or_null(path_inputs().openblas_coretype);
  const char* marker = or_null(path_inputs().reexec_marker);
  if (user && *user && marker && *marker) {
    const std::string m = marker, tail = std::string("->") + user;
    const bool ours = m.size() >= tail.size() && m.compare(m.size() - tail.size(), tail.size(), tail) == 0;
    p.how = ours ? "emotune re-executed with OPENBLAS_CORETYPE=" + std::string(user) + " (OpenBLAS had chosen " +
                       m.substr(0, m.size() - tail.size()) + ")"
                 : "OPENBLAS_CORETYPE=" + std::string(user) + " set by the user";
  } else if (user && *user) {
    p.how = "OPENBLAS_CORETYPE=" + std::string(user) + " set by the user";
  } else {
    p.how = "OpenBLAS' own cpuid detection";
  }
  if (!exec_failure().empty()) p.how += "; " + exec_failure();
  return p;
}

std::string cpu_path_describe(const CpuPath& p) {
  char fm[64];
  std::snprintf(fm, sizeof fm, "family %d model %d", p.cpu.family, p.cpu.model);
  std::string flags;
  auto add = [&](bool on, const char* name) {
    if (on) flags += std::string(flags.empty() ? "" : " ") + name;
  };
  add(p.cpu.sse3, "sse3");
  add(p.cpu.avx, "avx");
  add(p.cpu.fma, "fma");
  add(p.cpu.avx2, "avx2");
  add(p.cpu.avx512f, "avx512f");
  add(p.cpu.avx512bw, "avx512bw");
  add(p.cpu.avx512dq, "avx512dq");
  add(p.cpu.avx512vl, "avx512vl");
  add(p.cpu.avx512_bf16, "avx512_bf16");
  add(p.cpu.amx_tile, "amx_tile");
  add(p.cpu.amx_bf16, "amx_bf16");
  add(p.cpu.os_amx, "os-amx-state");
  add(p.cpu.os_avx512, "os-zmm-state");
  std::string s;
  s += "cpu: " + (p.cpu.vendor.empty() ? std::string("unknown") : p.cpu.vendor) + " " + fm + "\n";
  s += "cpu flags: " + (flags.empty() ? std::string("none detected") : flags) + "\n";
  s += "cpu best path: " + std::string(cpu_isa_name(p.cpu_isa)) + "\n";
  s += "openblas core: " + p.blas_core + " (" + cpu_isa_name(p.blas_isa) + ")\n";
  s += "openblas core chosen by: " + p.how + "\n";
  s += "cpu path in use: " + std::string(cpu_isa_name(p.blas_isa)) + "\n";
  s += "own micro-kernels (winograd gemm): " + std::string(gemm_packed_a_path()) + "\n";
  return s;
}

}  // namespace emotune
