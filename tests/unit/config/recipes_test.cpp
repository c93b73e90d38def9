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
    EXPECT_EQ(rc.config.data.train_files, std::vector<std::string>{"data/fortunes/train.txt"});
    EXPECT_EQ(rc.config.data.valid_files, std::vector<std::string>{"data/fortunes/valid.txt"});
    EXPECT_EQ(rc.config.run.dir.rfind("runs/", 0), 0u);
    // The written config reads back the same, as `reef` stores it in the run folder.
    EXPECT_TRUE(load_config_text(config_to_yaml(rc.config), "x", {}).config == rc.config);
  }
  EXPECT_GE(n, 3u);
}

TEST(ConfigRecipes, TinyRecipesAreSmallAndShort) {
  for (const char* name : {"llama-tiny", "gpt2-tiny"}) {
    ResolvedConfig rc = load_config(recipes_dir() + "/" + name + ".yaml", {});
    EXPECT_EQ(rc.config.model.preset, name);
    EXPECT_EQ(rc.config.run.dir, std::string("runs/") + name);
    EXPECT_LE(rc.config.model.hidden_size, 128);
    EXPECT_LE(rc.config.train.max_steps, 50);
    EXPECT_LE(rc.config.data.seq_len * rc.config.train.micro_batch_size, 512);
    EXPECT_EQ(rc.origin.at("model.hidden_size"), std::string("preset ") + name);
  }
  EXPECT_EQ(load_config(recipes_dir() + "/gpt2-tiny.yaml", {}).config.model.arch, "gpt2");
}

TEST(ConfigRecipes, FortunesLlamaIsTheSmallCpuJob) {
  ResolvedConfig rc = load_config(recipes_dir() + "/fortunes-llama.yaml", {});
  const Config& c = rc.config;
  EXPECT_EQ(c.run.dir, "runs/fortunes");
  EXPECT_EQ(c.model.arch, "llama");
  EXPECT_EQ(c.model.vocab_size, 0);
  EXPECT_EQ(c.model.hidden_size, 256);
  EXPECT_EQ(c.model.n_heads, 4);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.max_seq_len, 256);
  EXPECT_EQ(c.data.seq_len, 128);
  EXPECT_EQ(c.data.tokenizer, "byte");
  EXPECT_EQ(c.train.precision, "fp32");
  EXPECT_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.optim.min_lr, 1e-4);
  EXPECT_EQ(c.optim.warmup_steps, 50);
  EXPECT_EQ(c.optim.schedule, "cosine");
  EXPECT_EQ(c.train.eval_every, 100);
  EXPECT_EQ(c.checkpoint.every, 200);
  EXPECT_EQ(resolved_activation(c.model), "silu");
  EXPECT_EQ(rc.origin.at("model.hidden_size").rfind(recipes_dir() + "/fortunes-llama.yaml:", 0),
            0u);
  // Overrides on top of the recipe, as its header shows.
  rc = load_config(recipes_dir() + "/fortunes-llama.yaml",
                   {"train.max_steps=1000", "run.dir=runs/long"});
  EXPECT_EQ(rc.config.train.max_steps, 1000);
  EXPECT_EQ(rc.config.run.dir, "runs/long");
}

}  // namespace
}  // namespace reef
