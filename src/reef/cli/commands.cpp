// Subcommand dispatch (placeholder until the subcommands land).
#include "reef/cli/commands.h"

#include <torch/torch.h>

#include <cstdio>

namespace reef::cli {
int main(int argc, char** argv) {
  (void)argc;
  (void)argv;
  std::printf("reef (libtorch %s)\n", TORCH_VERSION);
  return 0;
}
}  // namespace reef::cli
