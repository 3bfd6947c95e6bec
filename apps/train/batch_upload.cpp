#include "apps/train/batch_upload.h"

namespace emotune {

DeviceBatch upload_batch(BatchLoader& loader, const Batch* b, Device device) {
  DeviceBatch d;
  d.images = Tensor::from_host({b->size, 1, b->side, b->side}, b->images, device);
  d.targets = Tensor::from_host({b->size, b->num_classes}, b->targets, device);
  d.labels.assign(b->labels, b->labels + b->size);
  loader.release(b);
  return d;
}

}  // namespace emotune
