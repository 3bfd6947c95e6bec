// Device: where a tensor's storage lives. Copies between devices happen only through a named
// call (Tensor::to, Tensor::copy_from), never behind an accessor.
#pragma once
#include <string>
#include <string_view>

namespace emotune {

enum class Device { cpu, cuda };

const char* device_name(Device d);
// "cpu" or "cuda"; anything else throws std::invalid_argument naming the text.
Device parse_device(std::string_view text);

}  // namespace emotune
