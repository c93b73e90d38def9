// Entry point of the command line: parses the subcommand and turns reef::Error into exit codes.
#pragma once

namespace reef::cli {
int main(int argc, char** argv);
}
