#include "engine/tensor.h"

#include <cstring>
#include <sstream>

#include "engine/autograd.h"
#include "engine/dispatch.h"

namespace emotune {

std::string shape_str(const Shape& s) {
  std::ostringstream os;
  os << '[';
  for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
  os << ']';
  return os.str();
}

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) {
    if (d < 0) throw Error("negative dimension in shape " + shape_str(s));
    n *= d;
  }
  return n;
}

Storage::Storage(int64_t count_, Device device_) : count(count_), device(device_) {
  if (count > 0) data = static_cast<float*>(kernel_table(device).alloc(sizeof(float) * count));
}

Storage::~Storage() {
  if (data) kernel_table(device).free(data);
}

namespace {
Tensor make(const Shape& shape, Device device) {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape;
  impl->storage = std::make_shared<Storage>(shape_numel(shape), device);
  return Tensor(std::move(impl));
}
// Every host-to-device copy of the engine: the copy, then the device's synchronisation, so that
// `src` may be reused or freed when this returns (kernels/runtime.h: a device's copy_from_host
// only orders the copy on its stream; from page-locked memory the DMA reads the buffer later).
// The trainer releases each batch's page-locked buffer to the loader right after its upload;
// without the synchronisation a loader thread could refill it before the GPU had read it. It
// costs no speed where it is used: a training step ends by reading its loss and logits back
// (d2h, synchronising), so the stream is idle when the next batch is uploaded and the wait is
// the copy itself (16 x 48 x 48 floats, 147 KB); evaluation and inference read each batch's
// output back before the next upload in the same way.
void upload(Device device, void* dst, const void* src, size_t bytes) {
  const KernelTable& k = kernel_table(device);
  k.copy_from_host(dst, src, bytes);
  if (device != Device::cpu) k.synchronize();
}
}  // namespace

Tensor Tensor::empty(const Shape& shape, Device device) { return make(shape, device); }

Tensor Tensor::zeros(const Shape& shape, Device device) { return full(shape, 0.0f, device); }

Tensor Tensor::full(const Shape& shape, float value, Device device) {
  Tensor t = make(shape, device);
  t.fill_(value);
  return t;
}

Tensor Tensor::from_host(const Shape& shape, const float* values, Device device) {
  Tensor t = make(shape, device);
  if (t.numel()) upload(device, t.data(), values, sizeof(float) * t.numel());
  return t;
}

Tensor Tensor::from_vector(const Shape& shape, const std::vector<float>& values, Device device) {
  if ((int64_t)values.size() != shape_numel(shape))
    throw Error("from_vector: " + std::to_string(values.size()) + " values for shape " +
                shape_str(shape));
  return from_host(shape, values.data(), device);
}

const Shape& Tensor::shape() const {
  if (!impl_) throw Error("use of an undefined tensor");
  return impl_->shape;
}

int64_t Tensor::dim(int i) const {
  int n = ndim();
  int j = i < 0 ? i + n : i;
  if (j < 0 || j >= n)
    throw Error("dimension " + std::to_string(i) + " out of range for shape " + shape_str(shape()));
  return impl_->shape[j];
}

int64_t Tensor::numel() const { return shape_numel(shape()); }
Device Tensor::device() const {
  if (!impl_) throw Error("use of an undefined tensor");
  return impl_->storage->device;
}
float* Tensor::data() const {
  if (!impl_) throw Error("use of an undefined tensor");
  return impl_->storage->data ? impl_->storage->data + impl_->offset : nullptr;
}

Tensor Tensor::to(Device device) const {
  if (device == this->device()) return *this;
  Tensor out = make(shape(), device);
  size_t bytes = sizeof(float) * numel();
  if (bytes == 0) return out;
  if (this->device() == Device::cpu) upload(device, out.data(), data(), bytes);
  else if (device == Device::cpu) kernel_table(this->device()).copy_to_host(out.data(), data(), bytes);
  else throw Error("to: no copy path between these devices");
  return out;
}

std::vector<float> Tensor::to_vector() const {
  std::vector<float> v(numel());
  if (!v.empty()) kernel_table(device()).copy_to_host(v.data(), data(), sizeof(float) * v.size());
  return v;
}

float Tensor::item() const {
  if (numel() != 1) throw Error("item: tensor of shape " + shape_str(shape()) + " is not a scalar");
  return to_vector()[0];
}

Tensor Tensor::clone() const {
  Tensor out = make(shape(), device());
  if (numel()) kernel_table(device()).copy(out.data(), data(), sizeof(float) * numel());
  return out;
}

void Tensor::copy_from(const Tensor& src) {
  if (src.numel() != numel())
    throw Error("copy_from: source " + shape_str(src.shape()) + " into " + shape_str(shape()));
  size_t bytes = sizeof(float) * numel();
  if (!bytes) return;
  if (src.device() == device()) kernel_table(device()).copy(data(), src.data(), bytes);
  else if (src.device() == Device::cpu) upload(device(), data(), src.data(), bytes);
  else if (device() == Device::cpu) kernel_table(src.device()).copy_to_host(data(), src.data(), bytes);
  else throw Error("copy_from: no copy path between these devices");
}

void Tensor::fill_(float value) {
  if (numel()) EMOTUNE_KERNEL(device(), fill)(numel(), value, data());
}

bool Tensor::requires_grad() const { return impl_ && impl_->requires_grad; }
Tensor& Tensor::set_requires_grad(bool on) {
  if (!impl_) throw Error("set_requires_grad on an undefined tensor");
  impl_->requires_grad = on;
  return *this;
}
Tensor Tensor::grad() const { return impl_ ? impl_->grad : Tensor(); }
void Tensor::set_grad(const Tensor& g) { impl_->grad = g; }
void Tensor::zero_grad() {
  if (impl_) impl_->grad = Tensor();
}

void Tensor::backward() const {
  if (numel() != 1)
    throw Error("backward: called on a tensor of shape " + shape_str(shape()) +
                "; only a single-element loss can seed backward");
  run_backward(*this, Tensor::full(shape(), 1.0f, device()));
}

Tensor Tensor::detach() const {
  auto impl = std::make_shared<TensorImpl>();
  impl->shape = shape();
  impl->storage = impl_->storage;
  impl->offset = impl_->offset;
  return Tensor(std::move(impl));
}

const std::shared_ptr<Node>& Tensor::grad_fn() const {
  static const std::shared_ptr<Node> none;
  return impl_ ? impl_->grad_fn : none;
}
void Tensor::set_grad_fn(std::shared_ptr<Node> node) { impl_->grad_fn = std::move(node); }

Tensor Tensor::view(const Shape& new_shape) const {
  if (shape_numel(new_shape) != numel())
    throw Error("view: cannot view shape " + shape_str(shape()) + " as " + shape_str(new_shape));
  Tensor t = detach();
  t.impl_->shape = new_shape;
  return t;
}

void check_same_shape(const Tensor& a, const Tensor& b, const char* what) {
  if (a.shape() != b.shape())
    throw Error(std::string(what) + ": shape mismatch: " + shape_str(a.shape()) + " vs " +
                shape_str(b.shape()));
}

void check_same_device(const Tensor& a, const Tensor& b, const char* what) {
  if (a.device() != b.device())
    throw Error(std::string(what) + ": tensors on different devices: " + device_name(a.device()) +
                " vs " + device_name(b.device()));
}

}  // namespace emotune
