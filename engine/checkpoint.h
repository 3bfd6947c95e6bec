// Checkpoints in the safetensors format (https://github.com/huggingface/safetensors):
//   8-byte little-endian header length N | N bytes of JSON header | tensor bytes
// The header maps each tensor name to {"dtype": F32|F16|BF16, "shape": [...],
// "data_offsets": [begin, end]} (offsets into the byte buffer after the header) and holds
// "__metadata__": {string: string} (architecture, class names, preprocessing, training state).
// The loader validates every field and size and refuses truncated or inconsistent files with a
// message naming the file and the field. Writes go to a temporary file in the same folder, are
// flushed to disk and renamed over the target: a killed run leaves the previous file intact.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/tensor.h"

namespace emotune {

enum class DType { f32, f16, bf16 };
const char* dtype_name(DType d);  // "F32", "F16", "BF16"
DType parse_dtype(const std::string& name);

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

struct Checkpoint {
  std::vector<NamedTensor> tensors;  // float32, on the CPU, in file order
  std::map<std::string, std::string> metadata;
  // How the tensors are stored in the file (the first tensor's dtype; emotune writes one dtype
  // per file), so that a rewrite of the metadata keeps the file's precision.
  DType dtype = DType::f32;

  const Tensor* find(const std::string& name) const;
  // The tensor named `name`, with shape `shape`; throws Error naming the file otherwise.
  const Tensor& get(const std::string& name, const Shape& shape) const;
  const std::string& meta(const std::string& key) const;  // throws when missing
  std::string path;
};

// Tensors on any device are copied to the host; stored as `dtype`.
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const std::map<std::string, std::string>& metadata, DType dtype = DType::f32);
Checkpoint load_safetensors(const std::string& path);

// IEEE half and bfloat16 conversions (round to nearest even), exposed for tests.
uint16_t float_to_half(float f);
float half_to_float(uint16_t h);
uint16_t float_to_bf16(float f);
float bf16_to_float(uint16_t h);

// Writes `bytes` to `path` atomically (temporary file, fsync, rename, fsync of the folder).
void write_file_atomic(const std::string& path, const std::string& bytes);

// Removes the temporary files that write_file_atomic calls killed mid-write left in `dir`
// (".NAME.tmp.PID" whose PID is no longer running); returns how many were removed.
int remove_stale_temp_files(const std::string& dir);

}  // namespace emotune
