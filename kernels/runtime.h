// Device memory and synchronisation, one set per device. The engine never calls CUDA itself:
// Storage asks the dispatch table for these.
//   alloc/free:  device memory (CUDA: through the caching allocator, so a training step does
//                no cudaMalloc after the first one)
//   copy_h2d / copy_d2h / copy_d2d: byte copies; they return when the data is usable by the
//                host (d2h) or ordered on the device's stream (h2d, d2d).
//                After copy_h2d the host buffer must stay unchanged and alive until the device's
//                next synchronize (or a d2h copy, which synchronises): from page-locked memory
//                the DMA reads it later, while the host goes on. Callers above the kernels
//                upload through the engine (Tensor::from_host / to / copy_from), which
//                synchronises after the copy, so that their buffer is free again on return.
//   device_count: 0 when the backend is built but no device is present
#pragma once
#include <string>
#include <cstddef>

namespace emotune {

void* alloc_cpu(size_t bytes);
void free_cpu(void* p);
void copy_cpu(void* dst, const void* src, size_t bytes);
int device_count_cpu();
void synchronize_cpu();
// Threads of the CPU kernels: OpenMP's team size n (>= 1), and OpenBLAS single-threaded. Every
// threaded CPU kernel splits its work over OpenMP threads and calls sgemm inside them; OpenBLAS's
// own pool, spinning between calls, took the second core from the OpenMP team (a two-thread
// training step ran ~20% slower with it: docs/benchmarks.md).
void set_cpu_threads(int n);
// set_cpu_threads with OpenMP's default team (OMP_NUM_THREADS, else the cores): emotune's main.
void cpu_threads_init();

// The arithmetic of the CPU conv and dense products (kernels/cpu/gemm.h), process-wide:
//   fp32  OpenBLAS sgemm and emotune's fp32 kernels
//   bf16  operands rounded to bfloat16, products summed in fp32 (kernels/cpu/gemm_bf16.h), on
//         CPUs with AVX512-BF16; everything else (weights, optimizer state, BatchNorm, softmax,
//         loss) stays fp32.
// Set it before the work starts (the front ends do, from --precision); it is read per product.
enum class Precision { fp32, bf16 };
void set_cpu_precision(Precision p);  // throws for bf16 where the CPU cannot run it
Precision cpu_precision();
// True when this CPU can run the bf16 products.
bool cpu_bf16_available();
// The kernel that runs them: "amx" (AMX tiles, where the CPU has them and Linux grants their state),
// "avx512-bf16" (vdpbf16ps), or "none"; and, when amx is not used on this CPU, why (else empty).
std::string cpu_bf16_kernel();
std::string cpu_bf16_amx_why_not();
// A product whose reduction is shorter than this runs in fp32 even at precision bf16: bf16's pairs
// and AMX's 32-deep tiles would be mostly zero padding, such a product is bound by memory traffic,
// not arithmetic, and in these networks it is the first convolution, applied to the raw pixels,
// where rounding flips the most top classes (docs/precision.md: `paper`'s agreement with fp32 on
// PublicTest rises from 99.33% to 99.67% when conv1 alone keeps fp32).
constexpr int kBf16MinReduction = 16;

// The conv algorithm of the CPU training products (kernels/cpu/conv2d.cpp, train_tile), process-wide:
//   auto       Winograd F(2x2) forward, F(4x4) or F(2x2) backward by cost, im2col where Winograd
//              does not pay (the default)
//   im2col     im2col + sgemm everywhere (the path before Winograd, for comparisons)
//   winograd2  / winograd4: that tile wherever Winograd applies
// Set at start-up (engine/runtime.h, runtime_configure, from EMOTUNE_TRAIN_CONV); read per product.
enum class TrainConvMode { auto_, im2col, winograd2, winograd4 };
void set_train_conv_mode(TrainConvMode m);
TrainConvMode train_conv_mode();

// For its lifetime OpenBLAS runs single-threaded and OpenMP does all the threading (the CPU
// inference graph): OpenBLAS's spinning pool would otherwise fight the OpenMP team for the same
// cores between layers. Restores the previous count. One at a time per process.
class BlasSerialScope {
 public:
  BlasSerialScope();
  ~BlasSerialScope();
  BlasSerialScope(const BlasSerialScope&) = delete;
  BlasSerialScope& operator=(const BlasSerialScope&) = delete;

 private:
  int saved_;
};

// The CUDA backend's start-up settings. The engine hands them to the plugin when it loads it and
// whenever they are set again (engine/dispatch.h, cuda_backend_configure; kernels/table.h).
//   launch_sync  synchronise after every kernel launch, so that a failing kernel is reported at
//                its own launch (EMOTUNE_CUDA_SYNC; kernels/cuda/check.h)
//   conv_tune    time every conv tile once per shape and keep the fastest; false: the heuristic
//                (EMOTUNE_CONV_TUNE=0; kernels/cuda/conv2d_cuda.h)
struct CudaSettings {
  bool launch_sync = false;
  bool conv_tune = true;
};
void set_cuda_settings(const CudaSettings& s);
CudaSettings cuda_settings();

void* alloc_cuda(size_t bytes);
void free_cuda(void* p);
void copy_h2d_cuda(void* dst, const void* src, size_t bytes);
void copy_d2h_cuda(void* dst, const void* src, size_t bytes);
void copy_d2d_cuda(void* dst, const void* src, size_t bytes);
int device_count_cuda();
void synchronize_cuda();
// Page-locked host memory for the batch loader (falls back to plain memory when no GPU).
void* alloc_pinned_cuda(size_t bytes);
void free_pinned_cuda(void* p);
// Caching-allocator counters, for tests that assert a step does no cudaMalloc.
struct CudaAllocatorStats {
  size_t malloc_calls = 0, bytes_reserved = 0, bytes_in_use = 0;
};
CudaAllocatorStats cuda_allocator_stats();

}  // namespace emotune
