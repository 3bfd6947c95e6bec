// The CPU path: instruction sets read with cpuid/xgetbv, the OpenBLAS kernels that actually run,
// and the start-up re-exec that replaces OpenBLAS' choice when the library did not recognise the
// CPU (kernels/cpu/cpu_features.h). On an AVX-512 machine the AVX-512 kernels must be running.
#include <doctest/doctest.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_packed.h"

using namespace emotune;

namespace {
// Runs a shell command, returns its stdout (stderr dropped: OPENBLAS_VERBOSE goes there).
std::string run(const std::string& cmd) {
  std::string out;
  FILE* p = popen((cmd + " 2>/dev/null").c_str(), "r");
  REQUIRE(p);
  std::array<char, 512> buf;
  while (fgets(buf.data(), (int)buf.size(), p)) out += buf.data();
  CHECK(pclose(p) == 0);
  return out;
}
const std::string kEmotune = std::string(EMOTUNE_BINARY_DIR) + "/bin/emotune";
// The child decides afresh: none of this process' own choices leak into it.
const std::string kCleanEnv = "env -u OPENBLAS_CORETYPE -u EMOTUNE_BLAS_REEXEC -u EMOTUNE_CPU_PATH ";
}  // namespace

TEST_CASE("cpu features: cpuid agrees with the compiler's own detection") {
  const CpuFeatures f = cpu_features_detect();
  MESSAGE("cpu: " << f.vendor << " family " << f.family << " model " << f.model << ", best path "
                  << std::string(cpu_isa_name(f.best())));
#if defined(__x86_64__)
  __builtin_cpu_init();
  // libgcc checks the same cpuid bits, and for AVX/AVX-512 the OS state in XCR0 as well.
  CHECK(f.avx2 == (bool)__builtin_cpu_supports("avx2"));
  CHECK(f.fma == (bool)__builtin_cpu_supports("fma"));
  CHECK((f.avx512f && f.os_avx512) == (bool)__builtin_cpu_supports("avx512f"));
  CHECK((f.avx512bw && f.os_avx512) == (bool)__builtin_cpu_supports("avx512bw"));
  CHECK(f.sse3 == (bool)__builtin_cpu_supports("sse3"));
#else
  CHECK(f.best() == CpuIsa::generic);
#endif
}

TEST_CASE("cpu features: best() needs the full instruction set and the OS state") {
  CpuFeatures f;
  f.avx2 = f.fma = f.os_avx = true;
  CHECK(f.best() == CpuIsa::avx2);
  f.avx512f = f.avx512bw = f.avx512dq = f.avx512vl = true;
  CHECK(f.best() == CpuIsa::avx2);  // ZMM state not saved by the OS
  f.os_avx512 = true;
  CHECK(f.best() == CpuIsa::avx512);
  f.avx512vl = false;
  CHECK(f.best() == CpuIsa::avx2);  // SkylakeX kernels use AVX-512VL
  f.os_avx = false;
  f.os_avx512 = false;
  CHECK(f.best() == CpuIsa::generic);  // YMM state not saved
}

TEST_CASE("cpu features: OpenBLAS core names map to the instruction set their kernels need") {
  CHECK(blas_core_isa("SkylakeX") == CpuIsa::avx512);
  CHECK(blas_core_isa("Cooperlake") == CpuIsa::avx512);
  CHECK(blas_core_isa("SAPPHIRERAPIDS") == CpuIsa::avx512);
  CHECK(blas_core_isa("Haswell") == CpuIsa::avx2);
  CHECK(blas_core_isa("Zen") == CpuIsa::avx2);
  CHECK(blas_core_isa("Prescott") == CpuIsa::generic);
  CHECK(blas_core_isa("Sandybridge") == CpuIsa::generic);
}

TEST_CASE("cpu features: the start-up choice, branch by branch") {
  // OpenBLAS did not recognise the CPU: replace its choice.
  CHECK(blas_core_choose(CpuIsa::avx512, "Prescott", nullptr, nullptr, nullptr).set_core == "SkylakeX");
  CHECK(blas_core_choose(CpuIsa::avx2, "Prescott", nullptr, nullptr, nullptr).set_core == "Haswell");
  CHECK(blas_core_choose(CpuIsa::avx512, "Haswell", nullptr, nullptr, nullptr).set_core == "SkylakeX");
  // Already as good as the CPU, or better than we would pick: keep.
  CHECK(blas_core_choose(CpuIsa::avx512, "Cooperlake", nullptr, nullptr, nullptr).set_core.empty());
  CHECK(blas_core_choose(CpuIsa::avx2, "Zen", nullptr, nullptr, nullptr).set_core.empty());
  CHECK(blas_core_choose(CpuIsa::generic, "Prescott", nullptr, nullptr, nullptr).set_core.empty());
  // The user's OPENBLAS_CORETYPE, the loop guard and the opt-out always win.
  const BlasCoreChoice user = blas_core_choose(CpuIsa::avx512, "Prescott", "Prescott", nullptr, nullptr);
  CHECK(user.set_core.empty());
  CHECK(user.reason.find("OPENBLAS_CORETYPE=Prescott") != std::string::npos);
  CHECK(blas_core_choose(CpuIsa::avx512, "Prescott", nullptr, "Prescott->SkylakeX", nullptr).set_core.empty());
  CHECK(blas_core_choose(CpuIsa::avx512, "Prescott", nullptr, nullptr, "generic").set_core.empty());
  CHECK(blas_core_choose(CpuIsa::avx512, "Prescott", "", "", "auto").set_core == "SkylakeX");
}

TEST_CASE("cpu path: on an AVX-512 machine the AVX-512 kernels run") {
  const CpuPath p = cpu_path_current();
  MESSAGE("\n" << cpu_path_describe(p));
  const char* user = std::getenv("OPENBLAS_CORETYPE");
  const char* marker = std::getenv("EMOTUNE_BLAS_REEXEC");
  if (user && *user && !(marker && *marker)) {
    // The user forced a core: that core must be the one running, whatever it is.
    MESSAGE("OPENBLAS_CORETYPE=" << user << " set by the user: checking only that it is in use");
    CHECK(p.how.find("set by the user") != std::string::npos);
    return;
  }
  if (std::getenv("EMOTUNE_CPU_PATH")) {
    MESSAGE("EMOTUNE_CPU_PATH is set: OpenBLAS' own choice kept, not checked");
    return;
  }
  // doctest_main ran cpu_path_init, as emotune's main does: the kernels match the CPU's level.
  CHECK(p.blas_isa == p.cpu_isa);
  // emotune's own micro-kernel (Winograd's products, kernels/cpu/gemm_packed.h) picks its path
  // from the CPU alone.
  CHECK(std::string(gemm_packed_a_path()) == (p.cpu_isa == CpuIsa::avx512 ? "avx512" : "portable"));
  if (p.cpu_isa == CpuIsa::avx512) {
    const bool avx512_core = p.blas_core == "SkylakeX" || p.blas_core == "Cooperlake" || p.blas_core == "SapphireRapids";
    CHECK_MESSAGE(avx512_core, "OpenBLAS runs " << p.blas_core << " on an AVX-512 CPU");
  } else {
    MESSAGE("no AVX-512 here (best " << std::string(cpu_isa_name(p.cpu_isa)) << "): checked the " << std::string(cpu_isa_name(p.blas_isa))
                                     << " path instead");
  }
}

TEST_CASE("cpu path: emotune re-executes itself once when OpenBLAS chose a weak core") {
  const CpuIsa isa = cpu_features_detect().best();
  if (isa == CpuIsa::generic) {
    MESSAGE("no AVX2 or AVX-512 here: nothing to re-execute for");
    return;
  }
  const std::string want = std::string("cpu path in use: ") + cpu_isa_name(isa);
  // EMOTUNE_CPU_TEST_CORE makes start-up decide as if OpenBLAS had picked Prescott.
  std::string out = run(kCleanEnv + "EMOTUNE_CPU_TEST_CORE=Prescott " + kEmotune + " --version --verbose");
  CHECK_MESSAGE(out.find("emotune re-executed with OPENBLAS_CORETYPE=") != std::string::npos, out);
  CHECK_MESSAGE(out.find("(OpenBLAS had chosen Prescott)") != std::string::npos, out);
  CHECK_MESSAGE(out.find(want) != std::string::npos, out);
  // A user's OPENBLAS_CORETYPE is never overridden, even a weak one.
  out = run(kCleanEnv + "OPENBLAS_CORETYPE=Prescott " + kEmotune + " --version --verbose");
  CHECK_MESSAGE(out.find("OPENBLAS_CORETYPE=Prescott set by the user") != std::string::npos, out);
  CHECK_MESSAGE(out.find("openblas core: Prescott") != std::string::npos, out);
  CHECK_MESSAGE(out.find("cpu path in use: generic") != std::string::npos, out);
  // The opt-out keeps OpenBLAS' choice (here the pretended Prescott would have been replaced).
  out = run(kCleanEnv + "EMOTUNE_CPU_PATH=generic EMOTUNE_CPU_TEST_CORE=Prescott " + kEmotune + " --version --verbose");
  CHECK_MESSAGE(out.find("OpenBLAS' own cpuid detection") != std::string::npos, out);
  // argv survives the re-exec: a subcommand's own output still comes out.
  out = run(kCleanEnv + "EMOTUNE_CPU_TEST_CORE=Prescott " + kEmotune + " predict --help");
  CHECK_MESSAGE(out.find("--model") != std::string::npos, out);
}
