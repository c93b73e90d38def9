// The `reef` executable: all subcommands are dispatched by cli/commands.
#include "reef/cli/commands.h"

int main(int argc, char** argv) { return reef::cli::main(argc, argv); }
