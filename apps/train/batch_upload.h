// A loader batch on the training device: the one place the trainer copies a batch from the
// loader's ring and gives its slot back.
#pragma once
#include <cstdint>
#include <vector>

#include "datasets/loader.h"
#include "engine/tensor.h"

namespace emotune {

struct DeviceBatch {
  Tensor images;                // [size, 1, side, side] on the device
  Tensor targets;               // [size, num_classes] on the device
  std::vector<int32_t> labels;  // host copy, for the accuracy count
};

// Uploads `batch` to `device`, then releases it to `loader`. The release comes after the uploads
// have finished reading the batch's buffers (Tensor::from_host returns only then), so a loader
// thread may refill the slot at once without changing what this step trains on. On a GPU the
// buffers are page-locked and the copy is asynchronous: releasing before the copy had completed
// let a loader thread refill them while the DMA was still reading (issue 22; test_upload_order).
DeviceBatch upload_batch(BatchLoader& loader, const Batch* batch, Device device);

}  // namespace emotune
