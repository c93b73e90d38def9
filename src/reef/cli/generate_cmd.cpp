// `reef generate --model DIR --prompt TEXT [sampling options]`: DIR is a model folder (Reef
// checkpoint or Hugging Face folder with its tokenizer) or a run folder (newest checkpoint).
#include <iostream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/threads.h"
#include "reef/checkpoint/model_io.h"
#include "reef/cli/subcommands.h"
#include "reef/infer/generate.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpoint_files.h"

namespace reef::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::vector<std::string> prompts;
  SamplingParams p;
  bool greedy = false, no_cache = false, print_ids = false;
  std::string device = "cpu";
  std::string dtype = "float32";
  int64_t threads = 0;
  int64_t num_samples = 1;
};

}  // namespace

std::string resolve_model_dir(const std::string& path) {
  if (!path_exists(path)) usage_error("--model: no such folder: {}", path);
  if (path_exists(join_path(path, "config.json"))) return path;
  if (auto c = latest_checkpoint(path)) return *c;
  usage_error(
      "--model: {} is neither a model folder (config.json) nor a run folder with checkpoints/",
      path);
}

void add_generate(CLI::App& app, Runs& runs) {
  auto* cmd = app.add_subcommand("generate", "generate text from a checkpoint");
  auto a = std::make_shared<GenerateArgs>();
  cmd->add_option("--model,--checkpoint,-m", a->checkpoint,
                  "model folder (Reef or Hugging Face), or run folder (newest checkpoint)")
      ->required();
  cmd->add_option("--prompt,-p", a->prompts, "prompt text (repeat for several)")->required();
  cmd->add_option("--max-new-tokens,-n", a->p.max_new_tokens, "tokens to generate at most")
      ->capture_default_str();
  cmd->add_option("--temperature,-t", a->p.temperature, "sampling temperature; 0 = greedy")
      ->capture_default_str();
  cmd->add_option("--top-k", a->p.top_k, "keep the k most likely tokens; 0 = off")
      ->capture_default_str();
  cmd->add_option("--top-p", a->p.top_p, "nucleus sampling mass; 1 = off")->capture_default_str();
  cmd->add_option("--seed", a->p.seed, "sampling seed")->capture_default_str();
  cmd->add_option("--stop", a->p.stop, "stop string (repeatable)");
  cmd->add_option("--num-samples", a->num_samples, "samples per prompt (seeds seed, seed+1, ...)")
      ->capture_default_str();
  cmd->add_flag("--greedy", a->greedy, "greedy decoding (same as --temperature 0)");
  cmd->add_flag("--print-ids", a->print_ids,
                "print token ids (prompt, then generated) instead of text");
  cmd->add_flag("--no-cache", a->no_cache, "recompute the whole sequence every step (no KV cache)");
  cmd->add_option("--device", a->device, "cpu, cuda or cuda:N")->capture_default_str();
  cmd->add_option("--dtype", a->dtype, "run the model in float32, bfloat16 or float16")
      ->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU threads; 0 = every core")->capture_default_str();
  cmd->callback([&runs, a] {
    runs.push_back([a] {
      if (a->p.temperature < 0) usage_error("--temperature must be >= 0, got {}", a->p.temperature);
      if (a->p.top_p <= 0 || a->p.top_p > 1)
        usage_error("--top-p must be in (0, 1], got {}", a->p.top_p);
      if (a->p.top_k < 0) usage_error("--top-k must be >= 0, got {}", a->p.top_k);
      if (a->p.max_new_tokens < 1)
        usage_error("--max-new-tokens must be >= 1, got {}", a->p.max_new_tokens);
      torch::set_num_threads(thread_count(a->threads));
      std::string dir = resolve_model_dir(a->checkpoint);
      const torch::ScalarType dtype = parse_weight_dtype(a->dtype, "--dtype");
      CausalLM model =
          load_model_folder(dir, torch::Device(a->device), dtype);  // config errors first
      require_language_model(model, dir, "reef generate");
      auto tok = load_tokenizer(dir);
      SamplingParams p = a->p;
      if (a->greedy) p.temperature = 0;
      p.use_cache = !a->no_cache;
      for (const auto& prompt : a->prompts) {
        for (int64_t s = 0; s < a->num_samples; ++s) {
          SamplingParams ps = p;
          ps.seed = p.seed + static_cast<uint64_t>(s);
          const std::vector<int32_t> ids = encode_prompt(*tok, prompt);
          Generation g = generate(model, *tok, ids, ps);
          if (a->print_ids) {
            std::string line;
            for (auto id : ids) line += std::to_string(id) + " ";
            for (auto id : g.tokens) line += std::to_string(id) + " ";
            if (!line.empty()) line.pop_back();
            std::cout << line << "\n";
          } else {
            std::cout << prompt << g.text << "\n";
          }
          if (a->prompts.size() > 1 || a->num_samples > 1) std::cout << "----\n";
          std::cout.flush();
        }
      }
      return 0;
    });
  });
}

}  // namespace reef::cli
