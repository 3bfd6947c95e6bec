// Which CPU instruction sets this machine has, and which path the CPU kernels run on.
//
// The CPU hot path is OpenBLAS sgemm (conv2d as im2col + GEMM, linear). Debian's OpenBLAS is built
// with DYNAMIC_ARCH: a library constructor, run before main(), reads OPENBLAS_CORETYPE or else
// recognises the CPU by its cpuid family/model. A CPU newer than the library (0.3.21 does not know
// Xeon family 6 model 207, Emerald Rapids) falls back to the generic "Prescott" SSE3 kernels,
// about 2.7x slower on the paper network. So the engine does not rely on the library knowing the
// CPU: it reads the instruction sets itself (cpuid, plus xgetbv for the OS saving the AVX and
// AVX-512 registers) and, when OpenBLAS picked a core weaker than the CPU supports, re-executes
// the program once with OPENBLAS_CORETYPE set (SkylakeX for AVX-512, Haswell for AVX2 + FMA).
//
// Overrides (docs/architecture.md, "CPU path"; read from the environment by the program's main,
// apps/runtime_env.h, and handed here as CpuPathInputs):
//   OPENBLAS_CORETYPE=<core>   the user's choice: always respected, never re-executed over
//   EMOTUNE_CPU_PATH=generic   keep whatever OpenBLAS chose (no re-exec), for comparisons;
//                              any other value (or none) is "auto", the behaviour above
//   EMOTUNE_CPU_TEST_CORE=<c>  tests only: decide as if OpenBLAS had chosen <c>, so the re-exec
//                              can be exercised on a CPU the library does recognise
#pragma once
#include <string>

namespace emotune {

// The instruction-set levels the engine distinguishes, weakest first.
enum class CpuIsa { generic = 0, avx2 = 1, avx512 = 2 };
const char* cpu_isa_name(CpuIsa isa);  // "generic" | "avx2" | "avx512"

struct CpuFeatures {
  bool sse3 = false, avx = false, fma = false, avx2 = false;
  bool avx512f = false, avx512bw = false, avx512dq = false, avx512vl = false, avx512_bf16 = false;
  bool amx_tile = false, amx_bf16 = false;  // AMX tiles and their BF16 products (kernels/cpu/gemm_bf16.h)
  bool os_avx = false, os_avx512 = false;  // XCR0: the OS saves YMM / ZMM + opmask state
  bool os_amx = false;                     // XCR0: the OS can save the tile state
  int family = 0, model = 0;               // display family/model (cpuid leaf 1)
  std::string vendor;                      // "GenuineIntel", "AuthenticAMD", ...

  // The best level that both the CPU and the OS support: avx512 needs F+BW+DQ+VL (what OpenBLAS'
  // SkylakeX kernels use) and ZMM state saved; avx2 needs AVX2+FMA and YMM state saved.
  CpuIsa best() const;
};

// cpuid + xgetbv on x86-64; every flag false elsewhere. Cheap; not cached.
CpuFeatures cpu_features_detect();

// The level emotune's cpuid check grants (best() == avx512: F+BW+DQ+VL with the OS saving the
// registers), detected once: the one rule every AVX-512 kernel of emotune's own dispatches on.
bool cpu_has_avx512();

// OpenBLAS' name for its kernel set ("SkylakeX", "Haswell", "Prescott", ...), and the level those
// kernels need: SkylakeX/Cooperlake/SapphireRapids -> avx512, Haswell/Zen -> avx2, else generic.
std::string blas_core_name();
CpuIsa blas_core_isa(const std::string& core);

// What start-up decided, and why. Pure function of its inputs, so tests can check every branch.
struct BlasCoreChoice {
  std::string set_core;  // the OPENBLAS_CORETYPE to re-execute with; empty: keep the current one
  std::string reason;    // one line for --version --verbose
};
// user_coretype: OPENBLAS_CORETYPE as found (null if unset); marker: EMOTUNE_BLAS_REEXEC as found
// (set by the re-exec, so never a second one); path_env: EMOTUNE_CPU_PATH (null, "auto", "generic").
BlasCoreChoice blas_core_choose(CpuIsa cpu, const std::string& current_core, const char* user_coretype,
                                const char* marker, const char* path_env);

// The environment cpu_path_init decides from, as found at start-up; empty means unset.
struct CpuPathInputs {
  std::string openblas_coretype;  // OPENBLAS_CORETYPE
  std::string reexec_marker;      // EMOTUNE_BLAS_REEXEC
  std::string cpu_path;           // EMOTUNE_CPU_PATH
  std::string test_core;          // EMOTUNE_CPU_TEST_CORE
};
// Call first thing in main() (emotune, test and bench programs, through engine/runtime.h): when
// blas_core_choose says so, sets OPENBLAS_CORETYPE and EMOTUNE_BLAS_REEXEC and execs
// /proc/self/exe with the same argv and environment. Returns only when no re-exec is needed or the
// exec failed (then the reason says so and the program runs on the kernels OpenBLAS chose). Keeps
// `in` for cpu_path_current. Safe to call more than once.
void cpu_path_init(const CpuPathInputs& in, char** argv);

// The path in use, for `emotune --version --verbose` and the tests (who chose the core: from the
// inputs the last cpu_path_init was given):
struct CpuPath {
  CpuFeatures cpu;
  CpuIsa cpu_isa = CpuIsa::generic;   // best level the CPU + OS support
  std::string blas_core;              // openblas_get_corename() now
  CpuIsa blas_isa = CpuIsa::generic;  // the level the running kernels use
  std::string how;                    // who chose the core: OpenBLAS, the user, or emotune's re-exec
};
CpuPath cpu_path_current();
std::string cpu_path_describe(const CpuPath& p);  // a few "key: value" lines

}  // namespace emotune
