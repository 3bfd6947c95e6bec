// The op x device dispatch table. One KernelTable per device, filled explicitly by
// register_cpu_kernels() and (in CUDA builds) register_cuda_kernels(); a null entry is a gap,
// and engine/dispatch turns a call to a gap into an error naming the op and the device.
#pragma once
#include <cstddef>

#include "kernels/batch_norm.h"
#include "kernels/conv2d.h"
#include "kernels/cross_entropy.h"
#include "kernels/dropout.h"
#include "kernels/elementwise.h"
#include "kernels/linear.h"
#include "kernels/max_pool2d.h"
#include "kernels/optim.h"
#include "kernels/runtime.h"

namespace emotune {

struct KernelTable {
  // memory: copy_from_host / copy_to_host / copy move bytes between the host and this device
  decltype(&alloc_cpu) alloc = nullptr;
  decltype(&free_cpu) free = nullptr;
  decltype(&copy_cpu) copy_from_host = nullptr;
  decltype(&copy_cpu) copy_to_host = nullptr;
  decltype(&copy_cpu) copy = nullptr;
  decltype(&device_count_cpu) device_count = nullptr;
  decltype(&synchronize_cpu) synchronize = nullptr;

  decltype(&conv2d_forward_cpu) conv2d_forward = nullptr;
  decltype(&conv2d_forward_relu_cpu) conv2d_forward_relu = nullptr;
  decltype(&conv2d_backward_input_cpu) conv2d_backward_input = nullptr;
  decltype(&conv2d_backward_weight_cpu) conv2d_backward_weight = nullptr;
  decltype(&max_pool2d_forward_cpu) max_pool2d_forward = nullptr;
  decltype(&max_pool2d_backward_cpu) max_pool2d_backward = nullptr;
  decltype(&batch_norm_forward_train_cpu) batch_norm_forward_train = nullptr;
  decltype(&batch_norm_forward_eval_cpu) batch_norm_forward_eval = nullptr;
  decltype(&batch_norm_backward_cpu) batch_norm_backward = nullptr;
  decltype(&batch_norm_relu_forward_train_cpu) batch_norm_relu_forward_train = nullptr;  // CPU only
  decltype(&batch_norm_relu_backward_cpu) batch_norm_relu_backward = nullptr;            // CPU only
  decltype(&dropout_forward_cpu) dropout_forward = nullptr;
  decltype(&dropout_backward_cpu) dropout_backward = nullptr;
  decltype(&linear_forward_cpu) linear_forward = nullptr;
  decltype(&linear_backward_cpu) linear_backward = nullptr;
  decltype(&softmax_cross_entropy_cpu) softmax_cross_entropy = nullptr;
  decltype(&fill_cpu) fill = nullptr;
  decltype(&add_cpu) add = nullptr;
  decltype(&axpy_cpu) axpy = nullptr;
  decltype(&mul_cpu) mul = nullptr;
  decltype(&scale_cpu) scale = nullptr;
  decltype(&scale_dev_cpu) scale_dev = nullptr;
  decltype(&relu_forward_cpu) relu_forward = nullptr;
  decltype(&relu_backward_cpu) relu_backward = nullptr;
  decltype(&sum_squares_cpu) sum_squares = nullptr;
  decltype(&sgd_update_cpu) sgd_update = nullptr;
  decltype(&adam_update_cpu) adam_update = nullptr;
};

// Fill the CPU table: the fast paths (im2col + OpenBLAS) where they exist, else the references.
void register_cpu_kernels(KernelTable& t);
// Fill the CUDA table (defined only in CUDA builds, in kernels/cuda/register.cu).
void register_cuda_kernels(KernelTable& t);

// The CUDA backend as the engine sees it. kernels/cuda is built as a plugin,
// libemotune_kernels_cuda.so, that engine/dispatch.cpp loads the first time a CUDA device is
// asked for, and then reaches through the one C entry point below (base/plugin.h).
struct CudaBackend {
  KernelTable kernels;
  void* (*alloc_pinned)(size_t bytes) = nullptr;  // page-locked host memory for batch buffers
  void (*free_pinned)(void* p) = nullptr;
  decltype(&set_cuda_settings) configure = nullptr;  // the start-up settings (kernels/runtime.h)
};

}  // namespace emotune

// Fills *b when bytes == sizeof(CudaBackend) and returns true; false from a plugin built with
// another table (the engine then refuses it with a message instead of calling past the end).
extern "C" bool emotune_cuda_backend(emotune::CudaBackend* b, size_t bytes);
