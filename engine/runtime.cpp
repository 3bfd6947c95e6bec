#include "engine/runtime.h"

#include "kernels/cpu/cpu_features.h"
#include "kernels/runtime.h"

namespace emotune {

void runtime_select_cpu_path(int argc, char** argv) { cpu_path_init(argc, argv); }
void runtime_init_threads() { cpu_threads_init(); }
void runtime_set_threads(int n) { set_cpu_threads(n); }
std::string runtime_describe() { return cpu_path_describe(cpu_path_current()); }

}  // namespace emotune
