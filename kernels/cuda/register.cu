// The CUDA row of the dispatch table: every entry of kernels/table.h, filled explicitly, and
// the plugin's entry point that hands it to the engine (kernels/table.h, CudaBackend).
#include "kernels/table.h"

namespace emotune {

void register_cuda_kernels(KernelTable& t) {
  t.alloc = alloc_cuda;
  t.free = free_cuda;
  t.copy_from_host = copy_h2d_cuda;
  t.copy_to_host = copy_d2h_cuda;
  t.copy = copy_d2d_cuda;
  t.device_count = device_count_cuda;
  t.synchronize = synchronize_cuda;

  t.conv2d_forward = conv2d_forward_cuda;
  t.conv2d_forward_relu = conv2d_forward_relu_cuda;
  t.conv2d_backward_input = conv2d_backward_input_cuda;
  t.conv2d_backward_weight = conv2d_backward_weight_cuda;
  t.max_pool2d_forward = max_pool2d_forward_cuda;
  t.max_pool2d_backward = max_pool2d_backward_cuda;
  t.batch_norm_forward_train = batch_norm_forward_train_cuda;
  t.batch_norm_forward_eval = batch_norm_forward_eval_cuda;
  t.batch_norm_backward = batch_norm_backward_cuda;
  t.dropout_forward = dropout_forward_cuda;
  t.dropout_backward = dropout_backward_cuda;
  t.linear_forward = linear_forward_cuda;
  t.linear_backward = linear_backward_cuda;
  t.softmax_cross_entropy = softmax_cross_entropy_cuda;
  t.fill = fill_cuda;
  t.add = add_cuda;
  t.axpy = axpy_cuda;
  t.mul = mul_cuda;
  t.scale = scale_cuda;
  t.scale_dev = scale_dev_cuda;
  t.relu_forward = relu_forward_cuda;
  t.relu_backward = relu_backward_cuda;
  t.sum_squares = sum_squares_cuda;
  t.sgd_update = sgd_update_cuda;
  t.adam_update = adam_update_cuda;
}

}  // namespace emotune

extern "C" bool emotune_cuda_backend(emotune::CudaBackend* b, size_t bytes) {
  if (bytes != sizeof(emotune::CudaBackend)) return false;
  emotune::register_cuda_kernels(b->kernels);
  b->alloc_pinned = emotune::alloc_pinned_cuda;
  b->free_pinned = emotune::free_pinned_cuda;
  b->configure = emotune::set_cuda_settings;
  return true;
}
