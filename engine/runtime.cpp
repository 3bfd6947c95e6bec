#include "engine/runtime.h"

#include <cstring>

#include "base/error.h"
#include "engine/dispatch.h"
#include "kernels/cpu/cpu_features.h"
#include "kernels/runtime.h"

namespace emotune {

namespace {

RuntimeSettings& settings() {
  static RuntimeSettings s;
  return s;
}

TrainConvMode parse_train_conv(const std::string& v) {
  if (v == "auto") return TrainConvMode::auto_;
  if (v == "im2col") return TrainConvMode::im2col;
  if (v == "winograd") return TrainConvMode::winograd2;
  if (v == "winograd4") return TrainConvMode::winograd4;
  throw Error("EMOTUNE_TRAIN_CONV: unknown value '" + v + "' (auto, im2col, winograd, winograd4)");
}

}  // namespace

void runtime_select_cpu_path(const RuntimeSettings& s, char** argv) {
  CpuPathInputs in;
  in.openblas_coretype = s.openblas_coretype;
  in.reexec_marker = s.blas_reexec_marker;
  in.cpu_path = s.cpu_path;
  in.test_core = s.cpu_test_core;
  cpu_path_init(in, argv);
}

void runtime_configure(const RuntimeSettings& s) {
  // Every check before any change, so that a wrong value leaves the settings as they were.
  if (s.graph != "inference" && s.graph != "training")
    throw Error("EMOTUNE_GRAPH='" + s.graph + "': expected 'inference' (the default) or 'training'");
  const TrainConvMode conv = parse_train_conv(s.train_conv);
  settings() = s;
  set_train_conv_mode(conv);
  CudaSettings cuda;
  cuda.launch_sync = s.cuda_sync;
  cuda.conv_tune = s.cuda_conv_tune;
  cuda_backend_configure(cuda);
}

const RuntimeSettings& runtime_settings() { return settings(); }
void runtime_init_threads() { cpu_threads_init(); }
void runtime_set_threads(int n) { set_cpu_threads(n); }

FrontEnd front_end_of(const char* command) {
  if (command && std::strcmp(command, "serve") == 0) return FrontEnd::serve;
  if (command && std::strcmp(command, "watch") == 0) return FrontEnd::watch;
  return FrontEnd::batch;
}

void runtime_apply_thread_rule(FrontEnd f) {
  if (runtime_settings().user_threads || f == FrontEnd::batch) return;
  set_cpu_threads(1);  // serve and watch: one OpenMP thread here, OpenBLAS single-threaded
}

std::string runtime_set_precision(const std::string& name) {
  if (name != "fp32" && name != "bf16" && name != "auto")
    throw Error("precision: unknown value '" + name + "' (fp32, bf16 or auto)");
  const bool bf16 = name == "bf16" || (name == "auto" && cpu_bf16_available());
  set_cpu_precision(bf16 ? Precision::bf16 : Precision::fp32);
  return runtime_precision();
}

std::string runtime_precision() { return cpu_precision() == Precision::bf16 ? "bf16" : "fp32"; }

std::string runtime_bf16_path() { return cpu_bf16_kernel(); }

std::string runtime_describe() {
  const std::string why = cpu_bf16_amx_why_not();
  return cpu_path_describe(cpu_path_current()) + "precision: " + runtime_precision() +
         " (bf16 path on this CPU: " + runtime_bf16_path() + (why.empty() ? "" : "; no amx: " + why) + ")\n";
}

}  // namespace emotune
