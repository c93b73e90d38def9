// `reef align dpo --config X [--model DIR] [key=value ...] [--resume] [--overwrite]`: alignment
// from preference pairs (recipes/dpo.h), with the training commands' options.
#include "reef/cli/subcommands.h"
#include "reef/recipes/dpo.h"

namespace reef::cli {

void add_align(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("align", "align a model from preferences (dpo)");
  cmd->require_subcommand(1);
  add_training_command(cmd, runs, "dpo",
                       "DPO-family training (sigmoid, ipo, hinge, robust, simpo) on preference "
                       "pairs, full weights or LoRA",
                       "model folder to align (Hugging Face layout, or a Reef run/checkpoint "
                       "folder; sets model.init_from)",
                       run_dpo);
}

}  // namespace reef::cli
