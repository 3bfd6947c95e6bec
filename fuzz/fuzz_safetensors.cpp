// Fuzz target: the safetensors checkpoint loader (engine/checkpoint.cpp): header length, JSON
// header, dtypes, shapes, offsets, metadata, F16/BF16 conversion.
#include "engine/checkpoint.h"
#include "fuzz/fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string& path = emotune::fuzz::write_input(data, size);
  return emotune::fuzz::run_accepting_errors([&] {
    emotune::Checkpoint ck = emotune::load_safetensors(path);
    for (const auto& nt : ck.tensors) {
      if (nt.name.empty()) std::abort();
      // Touch every value: a tensor whose size disagrees with its storage shows up here.
      std::vector<float> v = nt.tensor.to_vector();
      if ((int64_t)v.size() != nt.tensor.numel()) std::abort();
    }
  });
}
