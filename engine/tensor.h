// Tensor: float32, N-d shape, contiguous storage on one Device, and the autograd fields.
// A Tensor is a cheap handle (shared ownership); reshape shares storage; to()/clone() copy.
#pragma once
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "base/error.h"
#include "engine/device.h"

namespace emotune {

using Shape = std::vector<int64_t>;
std::string shape_str(const Shape& s);  // "[64, 1, 48, 48]"
int64_t shape_numel(const Shape& s);

// Owns `count` floats on one device; freed through that device's allocator.
struct Storage {
  float* data = nullptr;
  int64_t count = 0;
  Device device = Device::cpu;
  Storage(int64_t count, Device device);
  ~Storage();
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
};

struct Node;
struct TensorImpl;

class Tensor {
 public:
  Tensor() = default;
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // Uninitialised / zero / constant tensors, and tensors from host values (copied to `device`).
  // Every copy from the host (from_host, from_vector, to, copy_from) has finished reading the
  // host memory when it returns: the caller may overwrite or free it at once (a batch buffer goes
  // back to the loader). On a GPU that costs a stream synchronisation per upload.
  static Tensor empty(const Shape& shape, Device device = Device::cpu);
  static Tensor zeros(const Shape& shape, Device device = Device::cpu);
  static Tensor full(const Shape& shape, float value, Device device = Device::cpu);
  static Tensor from_vector(const Shape& shape, const std::vector<float>& values,
                            Device device = Device::cpu);
  static Tensor from_host(const Shape& shape, const float* values, Device device = Device::cpu);

  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const;
  int ndim() const { return (int)shape().size(); }
  int64_t dim(int i) const;  // negative i counts from the end
  int64_t numel() const;
  Device device() const;

  // Raw storage pointer on the tensor's device (a device pointer for cuda).
  float* data() const;

  // Explicit copies between devices.
  Tensor to(Device device) const;  // returns *this when already there
  std::vector<float> to_vector() const;  // copy to host
  float item() const;                    // single-element tensor to host
  Tensor clone() const;                  // deep copy, same device, no autograd history
  void copy_from(const Tensor& src);     // same numel, any devices; no autograd
  void fill_(float value);

  // Autograd.
  bool requires_grad() const;
  Tensor& set_requires_grad(bool on);
  Tensor grad() const;              // undefined until a backward reaches this tensor
  void set_grad(const Tensor& g);
  void zero_grad();                 // drops the gradient
  void backward() const;            // from a single-element tensor, seed 1
  Tensor detach() const;            // shares storage, no history
  const std::shared_ptr<Node>& grad_fn() const;
  void set_grad_fn(std::shared_ptr<Node> node);

  // A view with another shape over the same storage (no autograd: see ops::reshape).
  Tensor view(const Shape& shape) const;

  TensorImpl* impl() const { return impl_.get(); }
  bool same(const Tensor& o) const { return impl_ == o.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

struct TensorImpl {
  Shape shape;
  std::shared_ptr<Storage> storage;
  int64_t offset = 0;  // in floats, for views
  bool requires_grad = false;
  Tensor grad;
  std::shared_ptr<Node> grad_fn;
};

// Throws Error("<what>: expected shape A, got B") when shapes differ.
void check_same_shape(const Tensor& a, const Tensor& b, const char* what);
void check_same_device(const Tensor& a, const Tensor& b, const char* what);

}  // namespace emotune
