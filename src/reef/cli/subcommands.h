// Registration of each subcommand on the CLI11 app. Each adds its options and pushes the
// function that runs it (after a successful parse) onto `runs`.
#pragma once

#include <CLI/CLI.hpp>
#include <functional>
#include <string>
#include <vector>

namespace reef {
struct ResolvedConfig;
struct PretrainOptions;
struct TrainResult;
}  // namespace reef

namespace reef::cli {

using Runs = std::vector<std::function<int()>>;

void add_pretrain(CLI::App& app, Runs& runs);
void add_finetune(CLI::App& app, Runs& runs);
void add_generate(CLI::App& app, Runs& runs);
void add_config(CLI::App& app, Runs& runs);
void add_data(CLI::App& app, Runs& runs);
void add_tokenizer(CLI::App& app, Runs& runs);
void add_export(CLI::App& app, Runs& runs);
void add_convert(CLI::App& app, Runs& runs);
void add_serve(CLI::App& app, Runs& runs);

void add_eval(CLI::App& app, Runs& runs);
void add_align(CLI::App& app, Runs& runs);
void add_score(CLI::App& app, Runs& runs);

// A training command (pretrain, finetune, align dpo): --config, dotted overrides, --model,
// --resume, --overwrite, then `recipe`. Returns the subcommand.
using TrainingRecipe = std::function<TrainResult(const ResolvedConfig&, const PretrainOptions&)>;
CLI::App* add_training_command(CLI::App* parent, Runs& runs, const std::string& name,
                               const std::string& description, const std::string& model_help,
                               TrainingRecipe recipe);
void add_launch(CLI::App& app, Runs& runs);

// --model of generate, serve and eval: a model folder as is, or a run folder's newest checkpoint.
// Throws a usage error naming the path otherwise.
std::string resolve_model_dir(const std::string& path);

}  // namespace reef::cli
