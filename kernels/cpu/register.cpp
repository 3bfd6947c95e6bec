// The CPU row of the dispatch table: every entry filled, the fast paths where they exist
// (conv2d and linear: im2col / OpenBLAS), the reference loops elsewhere.
#include "kernels/table.h"

namespace emotune {

void register_cpu_kernels(KernelTable& t) {
  t.alloc = alloc_cpu;
  t.free = free_cpu;
  t.copy_from_host = copy_cpu;
  t.copy_to_host = copy_cpu;
  t.copy = copy_cpu;
  t.device_count = device_count_cpu;
  t.synchronize = synchronize_cpu;

  t.conv2d_forward = conv2d_forward_cpu;
  t.conv2d_forward_relu = conv2d_forward_relu_cpu;
  t.conv2d_backward_input = conv2d_backward_input_cpu;
  t.conv2d_backward_weight = conv2d_backward_weight_cpu;
  t.max_pool2d_forward = max_pool2d_forward_cpu;
  t.max_pool2d_backward = max_pool2d_backward_cpu;
  t.batch_norm_forward_train = batch_norm_forward_train_cpu;
  t.batch_norm_forward_eval = batch_norm_forward_eval_cpu;
  t.batch_norm_backward = batch_norm_backward_cpu;
  t.batch_norm_relu_forward_train = batch_norm_relu_forward_train_cpu;
  t.batch_norm_relu_backward = batch_norm_relu_backward_cpu;
  t.dropout_forward = dropout_forward_cpu;
  t.dropout_backward = dropout_backward_cpu;
  t.linear_forward = linear_forward_cpu;
  t.linear_backward = linear_backward_cpu;
  t.softmax_cross_entropy = softmax_cross_entropy_cpu;
  t.fill = fill_cpu;
  t.add = add_cpu;
  t.axpy = axpy_cpu;
  t.mul = mul_cpu;
  t.scale = scale_cpu;
  t.scale_dev = scale_dev_cpu;
  t.relu_forward = relu_forward_cpu;
  t.relu_backward = relu_backward_cpu;
  t.sum_squares = sum_squares_cpu;
  t.sgd_update = sgd_update_cpu;
  t.adam_update = adam_update_cpu;
}

}  // namespace emotune
