// `reef align dpo|rm|grpo --config X [--model DIR] [key=value ...] [--resume] [--overwrite]`:
// alignment from preference pairs (recipes/dpo.h), reward models (recipes/rm.h) and online RL
// with verifiable rewards (recipes/grpo.h), with the training commands' options.
#include "reef/cli/subcommands.h"
#include "reef/recipes/dpo.h"
#include "reef/recipes/grpo.h"
#include "reef/recipes/rm.h"

namespace reef::cli {

void add_align(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("align", "align a model (dpo, rm, grpo)");
  cmd->require_subcommand(1);
  add_training_command(cmd, runs, "dpo",
                       "DPO-family training (sigmoid, ipo, hinge, robust, simpo) on preference "
                       "pairs, full weights or LoRA",
                       "model folder to align (Hugging Face layout, or a Reef run/checkpoint "
                       "folder; sets model.init_from)",
                       run_dpo);
  add_training_command(cmd, runs, "rm",
                       "reward model: the model's body with a scalar head, trained on preference "
                       "pairs (Bradley-Terry), saved as a *ForSequenceClassification folder",
                       "model folder to start from (a language model gets a new score head; a "
                       "Hugging Face layout, or a Reef run/checkpoint folder)",
                       run_reward_model);
  add_training_command(cmd, runs, "grpo",
                       "GRPO-family online RL (grpo, bnpo, dr_grpo, dapo; GSPO): completions "
                       "sampled in-process from the live weights, scored by environments",
                       "model folder to train (Hugging Face layout, or a Reef run/checkpoint "
                       "folder; sets model.init_from)",
                       run_grpo);
}

}  // namespace reef::cli
