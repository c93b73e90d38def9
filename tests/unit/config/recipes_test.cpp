// Tests for the shipped recipes: every recipes/*.yaml loads and validates, opens with a
// comment saying what it is, and the named ones hold what their users rely on.
#include <gtest/gtest.h>

#include "config_testing.h"
#include "reef/base/files.h"
#include "reef/config/config.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::string recipes_dir() { return testing::source_dir() + "/recipes"; }

TEST(ConfigRecipes, EveryShippedRecipeLoadsValidatesAndHasAHeader) {
  size_t n = 0;
  for (const std::string& name : list_dir(recipes_dir())) {
    if (name.size() < 5 || name.substr(name.size() - 5) != ".yaml") continue;
    ++n;
    std::string path = recipes_dir() + "/" + name;
    SCOPED_TRACE(path);
    EXPECT_EQ(read_file(path).rfind("# ", 0), 0u) << "no comment header";
    ResolvedConfig rc = load_config(path, {});
    // Every pretraining recipe runs on the embedded corpus: as documents, or as the datasets
    // `make run` prepares from it. Fine-tuning recipes (model.init_from) start from the main
    // job's model on `reef data synth`'s set, alignment recipes from its SFT model on the synth
    // preference pairs (GRPO: from a short SFT, on the synth prompts), or from a real model's
    // local folder.
    if (!rc.config.model.init_from.empty()) {
      ASSERT_EQ(rc.config.data.train_files.size(), 1u);
      if (rc.config.model.init_from == "runs/fortunes")
        EXPECT_EQ(rc.config.data.train_files[0], "data/synth/train.jsonl");
      else if (rc.config.model.init_from == "runs/fortunes-sft")
        EXPECT_EQ(rc.config.data.train_files[0], "data/synth/pairs.jsonl");
      else if (rc.config.model.init_from == "runs/fortunes-sft-short")  // GRPO: fresh prompts
        EXPECT_EQ(rc.config.data.train_files[0], "data/synth-grpo/prompts.jsonl");
      else
        EXPECT_EQ(rc.config.model.init_from.rfind("models/", 0), 0u);
    } else if (rc.config.data.blend.empty()) {
      EXPECT_EQ(rc.config.data.train_files, std::vector<std::string>{"data/fortunes/train.jsonl"});
      EXPECT_EQ(rc.config.data.valid_files, std::vector<std::string>{"data/fortunes/valid.jsonl"});
    } else {
      EXPECT_EQ(rc.config.data.blend, std::vector<std::string>{"data/fortunes/train"});
    }
    EXPECT_EQ(rc.config.run.dir.rfind("runs/", 0), 0u);
    // The written config reads back the same, as `reef` stores it in the run folder.
    EXPECT_TRUE(load_config_text(config_to_yaml(rc.config), "x", {}).config == rc.config);
  }
  EXPECT_GE(n, 3u);
}

TEST(ConfigRecipes, TinyRecipesAreSmallAndShort) {
  for (const char* name : {"llama-tiny", "gpt2-tiny", "mixtral-tiny", "gemma-tiny"}) {
    ResolvedConfig rc = load_config(recipes_dir() + "/" + name + ".yaml", {});
    EXPECT_EQ(rc.config.model.preset, name);
    EXPECT_EQ(rc.config.run.dir, std::string("runs/") + name);
    EXPECT_LE(rc.config.model.hidden_size, 128);
    EXPECT_LE(rc.config.train.max_steps, 50);
    EXPECT_LE(rc.config.data.seq_len * rc.config.train.micro_batch_size, 512);
    EXPECT_EQ(rc.origin.at("model.hidden_size"), std::string("preset ") + name);
  }
  EXPECT_EQ(load_config(recipes_dir() + "/gpt2-tiny.yaml", {}).config.model.arch, "gpt2");
  const ModelConfig mixtral = load_config(recipes_dir() + "/mixtral-tiny.yaml", {}).config.model;
  EXPECT_EQ(mixtral.arch, "mixtral");
  EXPECT_EQ(mixtral.n_experts, 4);
  EXPECT_TRUE(mixtral.output_router_logits);  // trains with the load-balancing loss
  EXPECT_EQ(load_config(recipes_dir() + "/gemma-tiny.yaml", {}).config.model.arch, "gemma");
}

TEST(ConfigRecipes, FortunesLlamaIsTheSmallCpuJob) {
  ResolvedConfig rc = load_config(recipes_dir() + "/fortunes-llama.yaml", {});
  const Config& c = rc.config;
  // The main job: a small Llama on the BPE tokenizer and indexed datasets that `make run`
  // prepares, which evaluates and checkpoints during the run and ends on both.
  EXPECT_EQ(c.model.arch, "llama");
  EXPECT_EQ(c.model.vocab_size, 0);  // the tokenizer's
  EXPECT_EQ(c.data.tokenizer, "data/fortunes/tokenizer");
  EXPECT_EQ(c.data.blend, std::vector<std::string>{"data/fortunes/train"});
  EXPECT_EQ(c.data.valid_blend, std::vector<std::string>{"data/fortunes/valid"});
  EXPECT_TRUE(c.data.train_files.empty());
  EXPECT_LE(c.data.seq_len, c.model.max_seq_len);
  EXPECT_GT(c.train.eval_every, 0);
  EXPECT_EQ(c.train.max_steps % c.train.eval_every, 0);
  EXPECT_GT(c.checkpoint.every, 0);
  EXPECT_LT(c.checkpoint.every, c.train.max_steps);
  EXPECT_LT(c.optim.warmup_steps, c.train.max_steps);
  EXPECT_EQ(resolved_activation(c.model), "silu");
  EXPECT_EQ(rc.origin.at("model.hidden_size").rfind(recipes_dir() + "/fortunes-llama.yaml:", 0),
            0u);
  // Overrides on top of the recipe, as its header shows.
  rc = load_config(recipes_dir() + "/fortunes-llama.yaml",
                   {"train.max_steps=2000", "run.dir=runs/long"});
  EXPECT_EQ(rc.config.train.max_steps, 2000);
  EXPECT_EQ(rc.config.run.dir, "runs/long");
}

}  // namespace
}  // namespace reef
