// `reef pretrain --config X [--model HF_DIR] [key=value ...] [--resume] [--overwrite]`,
// `reef finetune` (the same options; SFT data and cfg.peft) and `reef config`.
#include <fmt/format.h>

#include <cmath>
#include <iostream>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/cli/subcommands.h"
#include "reef/config/config.h"
#include "reef/recipes/finetune.h"
#include "reef/recipes/pretrain.h"

namespace reef::cli {
namespace {

struct ConfigArgs {
  std::string config;
  std::vector<std::string> overrides;
};

void add_config_args(CLI::App* cmd, ConfigArgs& a) {
  cmd->add_option("--config,-c", a.config, "YAML recipe (e.g. recipes/llama-tiny.yaml)");
  cmd->add_option("overrides", a.overrides,
                  "dotted overrides: train.max_steps=50 model.n_layers=2");
}

}  // namespace

CLI::App* add_training_command(CLI::App* parent, Runs& runs, const std::string& name,
                               const std::string& description, const std::string& model_help,
                               TrainingRecipe recipe) {
  auto* cmd = parent->add_subcommand(name, description);
  auto a = std::make_shared<ConfigArgs>();
  auto opts = std::make_shared<PretrainOptions>();
  auto init_from = std::make_shared<std::string>();
  add_config_args(cmd, *a);
  cmd->add_option("--model,-m", *init_from, model_help);
  cmd->add_flag("--resume", opts->resume, "continue from the newest checkpoint in run.dir");
  cmd->add_flag("--overwrite", opts->overwrite, "delete run.dir's checkpoints and metrics first");
  cmd->callback([&runs, a, opts, init_from, recipe] {
    runs.push_back([a, opts, init_from, recipe] {
      auto overrides = a->overrides;
      if (!init_from->empty()) overrides.push_back("model.init_from=" + *init_from);
      ResolvedConfig rc = load_config(a->config, overrides);
      TrainResult r = recipe(rc, *opts);
      const std::string val =
          std::isnan(r.initial_val_loss) && std::isnan(r.final_val_loss)
              ? ""
              : fmt::format(", val_loss {:.4f} -> {:.4f}", r.initial_val_loss, r.final_val_loss);
      log_info("done: steps {}..{}{}, {:.0f} tokens/s, MFU {:.1f}%, checkpoint {}", r.start_step,
               r.end_step, val, r.tokens_per_s, 100 * r.mfu,
               r.last_checkpoint.empty() ? "-" : r.last_checkpoint);
      return r.interrupted ? 130 : 0;
    });
  });
  return cmd;
}

void add_pretrain(CLI::App& app, Runs& runs) {
  add_training_command(
      &app, runs, "pretrain", "pretrain a causal LM from a recipe",
      "Hugging Face model folder to continue pretraining from (sets model.init_from)",
      run_pretrain);
}

void add_finetune(CLI::App& app, Runs& runs) {
  add_training_command(&app, runs, "finetune",
                       "fine-tune a model folder on SFT data (full, LoRA or prompt tuning)",
                       "model folder to fine-tune (Hugging Face layout, or a Reef run/checkpoint "
                       "folder; sets model.init_from)",
                       run_finetune);
}

void add_config(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("config", "show resolved configs and presets");
  cmd->require_subcommand(1);
  auto* show = cmd->add_subcommand("show", "print the resolved config (file + preset + overrides)");
  auto a = std::make_shared<ConfigArgs>();
  add_config_args(show, *a);
  show->callback([&runs, a] {
    runs.push_back([a] {
      ResolvedConfig rc = load_config(a->config, a->overrides);
      std::cout << config_to_yaml(rc.config);
      return 0;
    });
  });
  auto* presets = cmd->add_subcommand("presets", "list the model presets and what each sets");
  presets->callback([&runs] {
    runs.push_back([] {
      for (const auto& [name, keys] : model_presets()) {
        std::cout << name << ":";
        for (const auto& [k, v] : keys) std::cout << " " << k << "=" << v;
        std::cout << "\n";
      }
      return 0;
    });
  });
}

}  // namespace reef::cli
