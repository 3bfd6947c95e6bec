#include "engine/device.h"

#include <stdexcept>
#include <string>

namespace emotune {

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu;
  if (text == "cuda" || text == "gpu") return Device::cuda;
  throw std::invalid_argument("unknown device '" + std::string(text) + "' (expected cpu or cuda)");
}

}  // namespace emotune
