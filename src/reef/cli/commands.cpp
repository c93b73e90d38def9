// Subcommand dispatch: builds the CLI11 parser, runs the chosen command and turns errors into
// one-line messages and exit codes (2: usage/config, 1: failed work).
#include "reef/cli/commands.h"

#include <torch/torch.h>

#include <CLI/CLI.hpp>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/models/family.h"

namespace reef::cli {

int main(int argc, char** argv) {
  install_model_families();  // config loading applies the families' presets and rules
  CLI::App app{"reef: pretrain, fine-tune, evaluate and serve LLMs on libtorch"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("reef 0.1.0 (libtorch ") + TORCH_VERSION + ")");
  std::vector<std::function<int()>> runs;
  add_pretrain(app, runs);
  add_finetune(app, runs);
  add_align(app, runs);
  add_score(app, runs);
  add_generate(app, runs);
  add_config(app, runs);
  add_data(app, runs);
  add_tokenizer(app, runs);
  add_export(app, runs);
  add_convert(app, runs);
  add_serve(app, runs);
  add_eval(app, runs);
  add_launch(app, runs);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    int rc = 0;
    for (auto& r : runs) rc = r();
    return rc;
  } catch (const Error& e) {
    log_line(LogLevel::kError, e.what());
    return e.exit_code();
  } catch (const c10::Error& e) {
    log_line(LogLevel::kError, std::string("torch: ") + e.what_without_backtrace());
    return 1;
  } catch (const std::exception& e) {
    log_line(LogLevel::kError, e.what());
    return 1;
  }
}

}  // namespace reef::cli
