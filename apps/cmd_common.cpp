#include "apps/commands.h"

namespace emotune {

int& cli_exit_code() {
  static int code = 0;
  return code;
}

}  // namespace emotune
