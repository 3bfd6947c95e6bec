// One exception type for every user-facing failure: the message names what was wrong and where
// (file, line, field, op, shape). apps/ print it and exit non-zero.
#pragma once
#include <stdexcept>
#include <string>

namespace emotune {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

}  // namespace emotune
