// emotune's CPU conv kernels (kernels/conv2d.h, the *_cpu fast paths) against oneDNN's, layer by
// layer: every real conv layer of tests/shapes.h (paper.conv1..7, vgg.conv1_1..conv4_2) at batch
// --batch, forward, backward-data and backward-weights, fp32 or bf16, --threads OpenMP threads for
// both (oneDNN's Debian build threads with the same libgomp, so one omp_set_num_threads sets both).
//
// oneDNN: engine cpu, one stream, algorithm convolution_direct (--algorithm auto lets oneDNN choose,
// Winograd included), every memory desc format_tag::any so that the primitive picks its own blocked
// layouts; the inputs are reordered into them from plain NCHW / OIHW fp32 once, before timing, and
// the output is reordered back only for the check: "onednn_layout":"any, reorders untimed". emotune
// takes and writes plain NCHW / KCRS fp32, as its layers do.
// Precision: fp32 is fp32 throughout. bf16 is emotune's mixed precision (kernels/runtime.h): emotune
// rounds the operands to bf16 inside the kernel and sums and writes fp32 (a product whose reduction
// is shorter than kBf16MinReduction stays fp32: paper.conv1 / vgg.conv1_1 forward, flagged in the
// line); oneDNN gets src, weights and diff_dst in bf16 and writes dst, diff_src and diff_weights in
// fp32. Forward has no bias on either side; backward-weights computes db / diff_bias on both.
//
// Each (layer, direction) is checked before it is timed: max|emotune - oneDNN| / max|oneDNN| over the
// output ("max_rel_diff"; for backward-weights over dw and db), which catches a mistake in the oneDNN
// set-up. Beyond the bound (fp32 1e-4, bf16 3e-2) the line says "valid":false, nothing is timed,
// and the program exits with 1 after the other layers.
// Timing: wall clock (std::chrono, oneDNN's stream waited on), --warmup calls of each, then --iters
// rounds that call emotune and oneDNN once each, the order alternating by round so that the noise
// of a shared machine and each call's cache left-overs land on both; the median of each. GFLOP/s
// counts 2*N*K*OH*OW*C*R*S for every direction. "onednn_over_emotune" = onednn_ms / emotune_ms:
// above 1 emotune is faster. One JSON line per (layer, direction, precision); scripts/onednn_table.py
// prints the table.
//   bench_vs_onednn [--layers all|paper.conv2,vgg.conv1_2,...] [--batch 64] [--threads 2]
//                   [--precision fp32|bf16] [--directions fwd,bwd_data,bwd_weights] [--iters 10]
//                   [--warmup 2] [--algorithm direct|auto] [--bf16-kernel amx|avx512-bf16]
//                   [--onednn-isa avx512_core_amx|avx512_core_bf16|avx512_core|default]
// oneDNN's ISA cap follows emotune's bf16 kernel (amx: avx512_core_amx, avx512-bf16:
// avx512_core_bf16) unless --onednn-isa or ONEDNN_MAX_CPU_ISA says otherwise; "onednn_impl" names
// the code it ran (e.g. "brgconv:avx512_core_amx_bf16"), "onednn_isa" the effective cap.
// Built only where oneDNN is installed (bench/CMakeLists.txt; Debian: libdnnl-dev).
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <sstream>
#include <stdexcept>
#include <string>
#include <unordered_map>
#include <vector>

#include <nlohmann/json.hpp>
#include <oneapi/dnnl/dnnl.hpp>

#include "apps/runtime_env.h"
#include "bench/check.h"
#include "bench/provenance.h"
#include "kernels/conv2d.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/cpu/gemm_bf16.h"
#include "kernels/runtime.h"
#include "tests/shapes.h"

using namespace emotune;
using dnnl::memory;

namespace {

enum class Dir { fwd, bwd_data, bwd_weights };
const char* dir_name(Dir d) { return d == Dir::fwd ? "fwd" : d == Dir::bwd_data ? "bwd_data" : "bwd_weights"; }

struct Options {
  std::vector<std::string> layers;  // empty: all
  std::vector<Dir> dirs = {Dir::fwd, Dir::bwd_data, Dir::bwd_weights};
  int batch = 64, threads = 2, iters = 10, warmup = 2;
  std::string precision = "fp32", algorithm = "direct", bf16_kernel, onednn_isa;
};

std::vector<std::string> split(const std::string& s) {
  std::vector<std::string> out;
  std::stringstream ss(s);
  for (std::string item; std::getline(ss, item, ',');)
    if (!item.empty()) out.push_back(item);
  return out;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Normalised by the largest reference magnitude, not per element: outputs near zero would make an
// element-wise ratio meaningless, and the question is whether the oneDNN set-up computes the same op.
template <typename V>
double max_rel_diff(const V& got, const V& want) {
  double diff = 0, scale = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    diff = std::max(diff, std::fabs((double)got[i] - (double)want[i]));
    scale = std::max(scale, std::fabs((double)want[i]));
  }
  return std::isnan(diff) ? INFINITY : diff / std::max(scale, 1e-30);
}

// emotune's arrays come from its tensors' allocator (kernels/runtime.h, alloc_cpu: 64-byte lines);
// oneDNN allocates its own memories, aligned.
template <typename T>
struct Aligned64 {
  using value_type = T;
  Aligned64() = default;
  template <typename U>
  Aligned64(const Aligned64<U>&) {}
  T* allocate(size_t n) { return static_cast<T*>(alloc_cpu(n * sizeof(T))); }
  void deallocate(T* p, size_t) { free_cpu(p); }
  template <typename U>
  bool operator==(const Aligned64<U>&) const { return true; }
};
using Floats = std::vector<float, Aligned64<float>>;
Floats aligned(const std::vector<float>& v) { return Floats(v.begin(), v.end()); }

// The arrays of one layer: the inputs every direction reads and each side's outputs, plain layout.
struct Problem {
  Conv2dShape p;
  Floats x, w, dy;
  Floats out, db;                      // emotune: y, dx or dw (and db)
  Floats ref, ref_db;                  // oneDNN's, reordered back to plain layout for the check
  explicit Problem(const Conv2dShape& s)
      : p(s),
        x(aligned(bench::uniform(s.x_size(), 1))),
        w(aligned(bench::uniform(s.w_size(), 2))),
        dy(aligned(bench::uniform(s.y_size(), 4))) {}
};

// One oneDNN primitive with its arguments in the layouts it chose, inputs already filled.
struct OnednnConv {
  dnnl::primitive prim;
  std::unordered_map<int, memory> args;
  memory out, out_db;  // in the primitive's layout
  std::string impl;
  void run(dnnl::stream& s) {
    prim.execute(s, args);
    s.wait();
  }
};

class Onednn {
 public:
  Onednn(bool bf16, dnnl::algorithm alg) : eng_(dnnl::engine::kind::cpu, 0), s_(eng_), bf16_(bf16), alg_(alg) {}

  OnednnConv make(Problem& q, Dir d) {
    const Conv2dShape& p = q.p;
    const memory::dims xd = {p.n, p.c, p.h, p.w}, wd = {p.k, p.c, p.r, p.s}, yd = {p.n, p.k, p.out_h(), p.out_w()};
    const memory::dims stride = {p.stride_h, p.stride_w}, pad = {p.pad_h, p.pad_w};
    const auto lo = bf16_ ? memory::data_type::bf16 : memory::data_type::f32, f32 = memory::data_type::f32;
    const auto any = memory::format_tag::any;
    // The forward primitive, and the hint the backward ones are created from.
    dnnl::convolution_forward::primitive_desc fwd(
        dnnl::convolution_forward::desc(dnnl::prop_kind::forward_training, alg_, {xd, lo, any}, {wd, lo, any},
                                        {yd, f32, any}, stride, pad, pad),
        eng_);
    OnednnConv c;
    if (d == Dir::fwd) {
      c.prim = dnnl::convolution_forward(fwd);
      c.impl = fwd.impl_info_str();
      c.out = memory(fwd.dst_desc(), eng_);
      c.args = {{DNNL_ARG_SRC, import(fwd.src_desc(), xd, q.x)},
                {DNNL_ARG_WEIGHTS, import(fwd.weights_desc(), wd, q.w)},
                {DNNL_ARG_DST, c.out}};
    } else if (d == Dir::bwd_data) {
      dnnl::convolution_backward_data::primitive_desc bd(
          dnnl::convolution_backward_data::desc(alg_, {xd, f32, any}, {wd, lo, any}, {yd, lo, any}, stride, pad, pad),
          eng_, fwd);
      c.prim = dnnl::convolution_backward_data(bd);
      c.impl = bd.impl_info_str();
      c.out = memory(bd.diff_src_desc(), eng_);
      c.args = {{DNNL_ARG_DIFF_DST, import(bd.diff_dst_desc(), yd, q.dy)},
                {DNNL_ARG_WEIGHTS, import(bd.weights_desc(), wd, q.w)},
                {DNNL_ARG_DIFF_SRC, c.out}};
    } else {
      dnnl::convolution_backward_weights::primitive_desc bw(
          dnnl::convolution_backward_weights::desc(alg_, {xd, lo, any}, {wd, f32, any}, {{p.k}, f32, memory::format_tag::x},
                                                   {yd, lo, any}, stride, pad, pad),
          eng_, fwd);
      c.prim = dnnl::convolution_backward_weights(bw);
      c.impl = bw.impl_info_str();
      c.out = memory(bw.diff_weights_desc(), eng_);
      c.out_db = memory(bw.diff_bias_desc(), eng_);
      c.args = {{DNNL_ARG_SRC, import(bw.src_desc(), xd, q.x)},
                {DNNL_ARG_DIFF_DST, import(bw.diff_dst_desc(), yd, q.dy)},
                {DNNL_ARG_DIFF_WEIGHTS, c.out},
                {DNNL_ARG_DIFF_BIAS, c.out_db}};
    }
    return c;
  }

  // The output of the last run, in plain layout: NCHW for y and dx, OIHW (= KCRS) for dw.
  void export_out(OnednnConv& c, Problem& q, Dir d) {
    const Conv2dShape& p = q.p;
    const memory::dims dims = d == Dir::fwd        ? memory::dims{p.n, p.k, p.out_h(), p.out_w()}
                              : d == Dir::bwd_data ? memory::dims{p.n, p.c, p.h, p.w}
                                                   : memory::dims{p.k, p.c, p.r, p.s};
    q.ref.resize((size_t)(dims[0] * dims[1] * dims[2] * dims[3]));
    memory plain({dims, memory::data_type::f32, memory::format_tag::nchw}, eng_, q.ref.data());  // = oihw
    dnnl::reorder(c.out, plain).execute(s_, c.out, plain);
    if (d == Dir::bwd_weights) {
      q.ref_db.resize(p.k);
      memory plain_db({{p.k}, memory::data_type::f32, memory::format_tag::x}, eng_, q.ref_db.data());
      dnnl::reorder(c.out_db, plain_db).execute(s_, c.out_db, plain_db);
    }
    s_.wait();
  }

  dnnl::stream& stream() { return s_; }

 private:
  // A memory in the primitive's layout and type, filled once from the plain fp32 array (the
  // reorder converts to bf16 where the primitive takes bf16, rounding to nearest even).
  memory import(const memory::desc& md, const memory::dims& dims, Floats& src) {
    memory plain({dims, memory::data_type::f32, memory::format_tag::nchw}, eng_, src.data());  // = oihw
    memory m(md, eng_);
    dnnl::reorder(plain, m).execute(s_, plain, m);
    s_.wait();
    return m;
  }

  dnnl::engine eng_;
  dnnl::stream s_;
  bool bf16_;
  dnnl::algorithm alg_;
};

void run_emotune(Problem& q, Dir d) {
  const Conv2dShape& p = q.p;
  if (d == Dir::fwd) conv2d_forward_cpu(p, q.x.data(), q.w.data(), nullptr, q.out.data());
  else if (d == Dir::bwd_data) conv2d_backward_input_cpu(p, q.dy.data(), q.w.data(), q.out.data());
  else conv2d_backward_weight_cpu(p, q.x.data(), q.dy.data(), q.out.data(), q.db.data());
}

std::string onednn_version() {
  const dnnl_version_t* v = dnnl_version();
  return std::to_string(v->major) + "." + std::to_string(v->minor) + "." + std::to_string(v->patch) + " (" +
         v->hash + ")";
}

std::string onednn_isa() {
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_amx: return "avx512_core_amx";
    case dnnl::cpu_isa::avx512_core_bf16: return "avx512_core_bf16";
    case dnnl::cpu_isa::avx512_core_vnni: return "avx512_core_vnni";
    case dnnl::cpu_isa::avx512_core: return "avx512_core";
    case dnnl::cpu_isa::avx2_vnni: return "avx2_vnni";
    case dnnl::cpu_isa::avx2: return "avx2";
    default: return "other";
  }
}

// oneDNN's ISA cap (its CPU dispatcher control) follows emotune's bf16 kernel unless --onednn-isa
// names one, so that a run with --bf16-kernel avx512-bf16 compares against oneDNN without AMX too;
// ONEDNN_MAX_CPU_ISA / DNNL_MAX_CPU_ISA in the environment win over both. (Debian's 2.6.3 runs AMX
// uncapped as well: "default" gives effective ISA avx512_core_amx on a Sapphire Rapids.) Returns the
// cap asked for. Must run before any other oneDNN call.
std::string onednn_set_max_isa(const Options& o) {
  if (const char* env = std::getenv("ONEDNN_MAX_CPU_ISA"); env && *env) return std::string("env ") + env;
  if (const char* env = std::getenv("DNNL_MAX_CPU_ISA"); env && *env) return std::string("env ") + env;
  std::string isa = o.onednn_isa;
  if (isa.empty()) isa = gemm_bf16_kernel() == Bf16Kernel::amx           ? "avx512_core_amx"
                         : gemm_bf16_kernel() == Bf16Kernel::avx512_bf16 ? "avx512_core_bf16"
                                                                         : "default";
  if (isa == "default") return isa;
  const dnnl::cpu_isa cap = isa == "avx512_core_amx"    ? dnnl::cpu_isa::avx512_core_amx
                            : isa == "avx512_core_bf16" ? dnnl::cpu_isa::avx512_core_bf16
                                                        : dnnl::cpu_isa::avx512_core;
  dnnl::set_max_cpu_isa(cap);
  return isa;
}

std::string date_now() {
  char date[64];
  const std::time_t t = std::time(nullptr);
  std::strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%S%z", std::localtime(&t));
  return date;
}

Options parse(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    auto next = [&](const char* name) -> std::string {
      if (i + 1 >= argc) throw std::runtime_error(std::string(name) + " needs a value");
      return argv[++i];
    };
    const std::string a = argv[i];
    if (a == "--layers") {
      const std::string v = next("--layers");
      o.layers = v == "all" ? std::vector<std::string>{} : split(v);
    } else if (a == "--directions") {
      o.dirs.clear();
      for (const std::string& d : split(next("--directions"))) {
        if (d == "fwd") o.dirs.push_back(Dir::fwd);
        else if (d == "bwd_data") o.dirs.push_back(Dir::bwd_data);
        else if (d == "bwd_weights") o.dirs.push_back(Dir::bwd_weights);
        else throw std::runtime_error("--directions: fwd, bwd_data or bwd_weights, not " + d);
      }
    } else if (a == "--batch") o.batch = std::atoi(next("--batch").c_str());
    else if (a == "--threads") o.threads = std::atoi(next("--threads").c_str());
    else if (a == "--iters") o.iters = std::atoi(next("--iters").c_str());
    else if (a == "--warmup") o.warmup = std::atoi(next("--warmup").c_str());
    else if (a == "--precision") o.precision = next("--precision");
    else if (a == "--algorithm") o.algorithm = next("--algorithm");
    else if (a == "--bf16-kernel") o.bf16_kernel = next("--bf16-kernel");
    else if (a == "--onednn-isa") o.onednn_isa = next("--onednn-isa");
    else throw std::runtime_error("unknown argument " + a);
  }
  if (o.batch < 1 || o.threads < 1 || o.iters < 1 || o.warmup < 0 || o.dirs.empty())
    throw std::runtime_error("--batch, --threads, --iters must be >= 1, --warmup >= 0, --directions not empty");
  if (o.precision != "fp32" && o.precision != "bf16") throw std::runtime_error("--precision: fp32 or bf16");
  if (o.algorithm != "direct" && o.algorithm != "auto") throw std::runtime_error("--algorithm: direct or auto");
  if (!o.bf16_kernel.empty()) (void)bf16_kernel_from_name(o.bf16_kernel);  // a bad name: an error now
  if (!o.onednn_isa.empty() && o.onednn_isa != "avx512_core_amx" && o.onednn_isa != "avx512_core_bf16" &&
      o.onednn_isa != "avx512_core" && o.onednn_isa != "default")
    throw std::runtime_error("--onednn-isa: avx512_core_amx, avx512_core_bf16, avx512_core or default");
  for (const std::string& l : o.layers) {
    const auto& cases = testing::conv_cases();
    if (std::none_of(cases.begin(), cases.end(), [&](const auto& c) { return !bench::is_edge(c.name) && bench::layer_of(c.name) == l; }))
      throw std::runtime_error("--layers: no real conv layer " + l + " in tests/shapes.h");
  }
  return o;
}

// What every line of the run shares.
struct Run {
  Options o;
  bool bf16 = false;
  double bound = 0;
  nlohmann::ordered_json provenance;
};

// Checks, then times one layer in one direction, and prints its line; false when the check failed.
bool bench_case(const Run& run, Onednn& dnn, Problem& q, const std::string& layer, const std::string& shape, Dir d) {
  const Conv2dShape& p = q.p;
  const Options& o = run.o;
  q.out.assign(d == Dir::fwd ? p.y_size() : d == Dir::bwd_data ? p.x_size() : p.w_size(), 0.0f);
  q.db.assign(p.k, 0.0f);
  OnednnConv c = dnn.make(q, d);
  // Validate, then time: the first call of each side is checked.
  run_emotune(q, d);
  c.run(dnn.stream());
  dnn.export_out(c, q, d);
  double diff = max_rel_diff(q.out, q.ref);
  if (d == Dir::bwd_weights) diff = std::max(diff, max_rel_diff(q.db, q.ref_db));
  const bool valid = diff <= run.bound;
  nlohmann::ordered_json out = {{"bench", "vs_onednn"},
                                {"layer", layer},
                                {"shape", shape},
                                {"direction", dir_name(d)},
                                {"precision", o.precision},
                                {"batch", p.n},
                                {"threads", o.threads},
                                {"iters", o.iters},
                                {"warmup", o.warmup},
                                {"gflop", p.flops() / 1e9},
                                {"max_rel_diff", diff},
                                {"valid", valid}};
  if (valid) {
    for (int i = 0; i < o.warmup; ++i) run_emotune(q, d), c.run(dnn.stream());
    std::vector<double> ms_e, ms_o;
    for (int i = 0; i < o.iters; ++i) {
      for (int side = 0; side < 2; ++side) {
        const bool emotune_now = (side == 0) == (i % 2 == 0);  // even rounds emotune first, odd ones oneDNN
        const double t0 = now_ms();
        if (emotune_now) run_emotune(q, d);
        else c.run(dnn.stream());
        (emotune_now ? ms_e : ms_o).push_back(now_ms() - t0);
      }
    }
    const double e = median(ms_e), n = median(ms_o);
    out["emotune_ms"] = e;
    out["onednn_ms"] = n;
    out["emotune_gflops"] = p.flops() / (e * 1e6);
    out["onednn_gflops"] = p.flops() / (n * 1e6);
    out["onednn_over_emotune"] = n / e;
  } else {
    std::fprintf(stderr, "bench_vs_onednn: VALIDATION FAILED: %s %s %s: max_rel_diff %g > %g, not timed\n",
                 layer.c_str(), dir_name(d), o.precision.c_str(), diff, run.bound);
  }
  // emotune keeps a product whose reduction is shorter than kBf16MinReduction in fp32 (kernels/runtime.h).
  const bool emotune_fp32_product = run.bf16 && d == Dir::fwd && p.c * p.r * p.s < kBf16MinReduction;
  out["emotune_bf16_kernel"] = !run.bf16 ? std::string("-")
                               : emotune_fp32_product ? std::string("none (fp32: reduction < 16)")
                                                      : cpu_bf16_kernel();
  out["onednn_impl"] = c.impl;
  out["onednn_algorithm"] = o.algorithm == "auto" ? "convolution_auto" : "convolution_direct";
  out["onednn_dtypes"] = !run.bf16           ? "f32"
                         : d == Dir::fwd      ? "src bf16, weights bf16, dst f32"
                         : d == Dir::bwd_data ? "diff_dst bf16, weights bf16, diff_src f32"
                                              : "src bf16, diff_dst bf16, diff_weights f32, diff_bias f32";
  out["onednn_layout"] = "any, reorders untimed";
  out["bias"] = d == Dir::fwd ? "none" : d == Dir::bwd_weights ? "db computed by both" : "-";
  out.update(run.provenance);
  std::printf("%s\n", out.dump().c_str());
  std::fflush(stdout);
  return valid;
}

}  // namespace

int main(int argc, char** argv) {
  emotune::runtime_start_from_env("bench_vs_onednn", argv);  // apps/runtime_env.h
  Run run;
  try {
    run.o = parse(argc, argv);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_vs_onednn: %s\n", e.what());
    return 2;
  }
  bool all_valid = true;
  try {
    const Options& o = run.o;
    run.bf16 = o.precision == "bf16";
    // Operands rounded to 8 bits on both sides, in different orders and (emotune's Winograd) after
    // different transforms: a few bf16 ulps of the output's range. fp32: summation order only.
    run.bound = run.bf16 ? 3e-2 : 1e-4;
    set_cpu_threads(o.threads);  // omp_set_num_threads: emotune's team and oneDNN's, before any primitive
    set_cpu_precision(run.bf16 ? Precision::bf16 : Precision::fp32);
    if (!o.bf16_kernel.empty())
      set_gemm_bf16_kernel(bf16_kernel_from_name(o.bf16_kernel));
    // Asks Linux for the AMX tile state once for the process (emotune's kernel would at its first
    // product), so that oneDNN's AMX code may run whichever side runs first.
    gemm_bf16_amx_available();
    const std::string max_isa = onednn_set_max_isa(o);
    Onednn dnn(run.bf16, o.algorithm == "auto" ? dnnl::algorithm::convolution_auto
                                               : dnnl::algorithm::convolution_direct);
    const CpuPath path = cpu_path_current();
    double load[1] = {0};
    getloadavg(load, 1);
    run.provenance = {{"emotune_path", std::string(cpu_isa_name(path.cpu_isa)) + ", OpenBLAS " + path.blas_core},
                      {"onednn_version", onednn_version()},
                      {"onednn_isa", onednn_isa()},
                      {"onednn_max_isa", max_isa},
                      {"omp_threads", omp_get_max_threads()},
                      {"loadavg_at_start", load[0]},
                      {"date", date_now()},
                      {"commit", bench::commit()}};
    for (const testing::ConvCase& cc : testing::conv_cases()) {
      const std::string layer = bench::layer_of(cc.name);
      if (bench::is_edge(cc.name)) continue;
      if (!o.layers.empty() && std::find(o.layers.begin(), o.layers.end(), layer) == o.layers.end()) continue;
      Conv2dShape p = cc.shape;
      p.n = o.batch;
      Problem q(p);
      for (Dir d : o.dirs) all_valid &= bench_case(run, dnn, q, layer, cc.name.substr(cc.name.find(' ') + 1), d);
    }
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "bench_vs_onednn: oneDNN: %s (status %d)\n", e.what(), (int)e.status);
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_vs_onednn: %s\n", e.what());
    return 1;
  }
  return all_valid ? 0 : 1;
}
