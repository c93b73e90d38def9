// Tests for loading configs: defaults, YAML files, dotted overrides, their precedence (preset,
// then file, then command line), lists, origins, and apply_override on a resolved config.
#include <gtest/gtest.h>

#include "config_testing.h"
#include "reef/config/config.h"
#include "testing/testing.h"

namespace reef {
namespace {

using config_testing::write_yaml;

TEST(ConfigLoad, NoFileGivesDefaultsWithDefaultOrigins) {
  ResolvedConfig rc = load_config("", {});
  EXPECT_TRUE(rc.config == Config{});
  EXPECT_EQ(rc.config.train.max_steps, 100);
  EXPECT_EQ(rc.config.optim.lr, 3e-4);
  EXPECT_EQ(rc.config.model.activation, "auto");
  EXPECT_EQ(rc.origin.size(), config_keys().size());
  for (const auto& [key, origin] : rc.origin) EXPECT_EQ(origin, "default") << key;
}

TEST(ConfigLoad, FileSetsNestedKeysWithFileLineOrigins) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml",
                                "# a comment\n"
                                "run:\n"
                                "  dir: /tmp/somewhere\n"
                                "model: {n_layers: 2, hidden_size: 64}\n"
                                "train:\n"
                                "  max_steps: 7\n"
                                "optim:\n"
                                "  lr: 1e-3\n"
                                "  decay_norms_and_biases: true\n");
  ResolvedConfig rc = load_config(path, {});
  EXPECT_EQ(rc.config.run.dir, "/tmp/somewhere");
  EXPECT_EQ(rc.config.model.n_layers, 2);
  EXPECT_EQ(rc.config.model.hidden_size, 64);
  EXPECT_EQ(rc.config.train.max_steps, 7);
  EXPECT_EQ(rc.config.optim.lr, 1e-3);
  EXPECT_TRUE(rc.config.optim.decay_norms_and_biases);
  EXPECT_EQ(rc.origin.at("run.dir"), path + ":3");
  EXPECT_EQ(rc.origin.at("model.n_layers"), path + ":4");
  EXPECT_EQ(rc.origin.at("train.max_steps"), path + ":6");
  EXPECT_EQ(rc.origin.at("optim.decay_norms_and_biases"), path + ":9");
  EXPECT_EQ(rc.origin.at("train.micro_batch_size"), "default");
}

TEST(ConfigLoad, CommandLineOverridesFileWhateverTheOrder) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml",
                                "train: {max_steps: 7, micro_batch_size: 3}\n"
                                "checkpoint: {every: 5}\n");
  ResolvedConfig rc =
      load_config(path, {"run.dir=/tmp/x", "train.max_steps=50", "checkpoint.every=10",
                         "model.n_layers=2", "data.train_files=[a.txt,b.txt]"});
  EXPECT_EQ(rc.config.run.dir, "/tmp/x");
  EXPECT_EQ(rc.config.train.max_steps, 50);
  EXPECT_EQ(rc.config.train.micro_batch_size, 3);  // from the file, not overridden
  EXPECT_EQ(rc.config.checkpoint.every, 10);
  EXPECT_EQ(rc.config.model.n_layers, 2);
  EXPECT_EQ(rc.config.data.train_files, (std::vector<std::string>{"a.txt", "b.txt"}));
  EXPECT_EQ(rc.origin.at("train.max_steps"), "command line");
  EXPECT_EQ(rc.origin.at("train.micro_batch_size"), path + ":1");
  EXPECT_EQ(rc.origin.at("data.train_files"), "command line");
}

TEST(ConfigLoad, LaterOverrideOfTheSameKeyWins) {
  ResolvedConfig rc = load_config("", {"train.max_steps=5", "train.max_steps=6"});
  EXPECT_EQ(rc.config.train.max_steps, 6);
}

TEST(ConfigLoad, PresetIsAppliedBeforeFileKeysEvenWhenWrittenLast) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml",
                                "model:\n"
                                "  n_layers: 2\n"
                                "  preset: llama-tiny\n");
  ResolvedConfig rc = load_config(path, {});
  EXPECT_EQ(rc.config.model.preset, "llama-tiny");
  EXPECT_EQ(rc.config.model.n_layers, 2);       // the file's key wins over the preset's 4
  EXPECT_EQ(rc.config.model.hidden_size, 128);  // from the preset
  EXPECT_EQ(rc.config.model.n_kv_heads, 2);
  EXPECT_EQ(rc.origin.at("model.n_layers"), path + ":2");
  EXPECT_EQ(rc.origin.at("model.hidden_size"), "preset llama-tiny");
  EXPECT_EQ(rc.origin.at("model.preset"), path + ":3");
  EXPECT_EQ(rc.origin.at("model.norm_eps"), "preset llama-tiny");
  EXPECT_EQ(rc.origin.at("model.rope_factor"), "default");  // not set by this preset
}

TEST(ConfigLoad, CommandLinePresetReplacesFilePresetButNotFileKeys) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml", "model: {preset: llama-tiny, n_layers: 3}\n");
  ResolvedConfig rc = load_config(path, {"model.preset=qwen3-tiny", "model.hidden_size=256"});
  EXPECT_EQ(rc.config.model.preset, "qwen3-tiny");
  EXPECT_EQ(rc.config.model.arch, "qwen3");
  EXPECT_TRUE(rc.config.model.qk_norm);
  EXPECT_EQ(rc.config.model.head_dim, 64);
  EXPECT_EQ(rc.config.model.n_layers, 3);
  EXPECT_EQ(rc.config.model.hidden_size, 256);
  EXPECT_EQ(rc.origin.at("model.preset"), "command line");
  EXPECT_EQ(rc.origin.at("model.arch"), "preset qwen3-tiny");
}

TEST(ConfigLoad, ListsAcceptScalarsFlowAndBlockSequences) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml",
                                "data:\n"
                                "  train_files: one.txt\n"
                                "  valid_files:\n"
                                "    - v1.jsonl\n"
                                "    - v2.jsonl\n");
  ResolvedConfig rc = load_config(path, {});
  EXPECT_EQ(rc.config.data.train_files, std::vector<std::string>{"one.txt"});
  EXPECT_EQ(rc.config.data.valid_files, (std::vector<std::string>{"v1.jsonl", "v2.jsonl"}));

  rc = load_config(path, {"data.train_files=x.txt", "data.valid_files=[]"});
  EXPECT_EQ(rc.config.data.train_files, std::vector<std::string>{"x.txt"});
  EXPECT_TRUE(rc.config.data.valid_files.empty());
  rc = load_config(path, {"data.train_files=['a b.txt', \"c,d.txt\"]"});
  EXPECT_EQ(rc.config.data.train_files, (std::vector<std::string>{"a b.txt", "c,d.txt"}));
}

TEST(ConfigLoad, OverrideValuesAreTypedByTheirKey) {
  ResolvedConfig rc = load_config(
      "", {"optim.lr=1e-3", "optim.min_lr=0", "run.seed=-5", "logging.tensorboard=false",
           "run.dir=runs/a #1", "model.preset=", "optim.weight_decay=0", "run.device=\"cuda:1\""});
  EXPECT_EQ(rc.config.optim.lr, 1e-3);
  EXPECT_EQ(rc.config.optim.min_lr, 0.0);
  EXPECT_EQ(rc.config.run.seed, -5);
  EXPECT_FALSE(rc.config.logging.tensorboard);
  EXPECT_EQ(rc.config.run.dir, "runs/a #1");  // strings are taken as typed
  EXPECT_EQ(rc.config.model.preset, "");
  EXPECT_EQ(rc.config.run.device, "cuda:1");  // quotes opt into YAML
}

TEST(ConfigLoad, SectionOverrideWithAFlowMapSetsItsKeys) {
  ResolvedConfig rc = load_config("", {"model={n_layers: 2, hidden_size: 64}"});
  EXPECT_EQ(rc.config.model.n_layers, 2);
  EXPECT_EQ(rc.config.model.hidden_size, 64);
  EXPECT_EQ(rc.origin.at("model.hidden_size"), "command line");
}

TEST(ConfigLoad, TopLevelDottedKeysAndEmptySectionsAreAccepted) {
  ResolvedConfig rc = load_config_text("train.max_steps: 9\nlogging:\n", "x.yaml", {});
  EXPECT_EQ(rc.config.train.max_steps, 9);
  EXPECT_EQ(rc.origin.at("train.max_steps"), "x.yaml:1");
  EXPECT_TRUE(load_config_text("", "empty.yaml", {}).config == Config{});
  EXPECT_TRUE(load_config_text("# only a comment\n", "c.yaml", {}).config == Config{});
}

TEST(ConfigLoad, NullStringAndListValuesMeanEmpty) {
  ResolvedConfig rc = load_config_text("model: {preset: llama-tiny}\ndata: {valid_files: ~}\n",
                                       "x.yaml", {"model.preset=''"});
  EXPECT_EQ(rc.config.model.preset, "");
  EXPECT_EQ(rc.config.model.hidden_size, 256);  // no preset applied
  EXPECT_TRUE(rc.config.data.valid_files.empty());
}

TEST(ConfigApplyOverride, SetsKeyAndOriginWithoutTouchingOthers) {
  ResolvedConfig rc = load_config_text("train: {max_steps: 9}\n", "x.yaml", {});
  apply_override(rc, "train.micro_batch_size=2");
  EXPECT_EQ(rc.config.train.micro_batch_size, 2);
  EXPECT_EQ(rc.config.train.max_steps, 9);
  EXPECT_EQ(rc.origin.at("train.micro_batch_size"), "command line");
  EXPECT_EQ(rc.origin.at("train.max_steps"), "x.yaml:1");
}

TEST(ConfigApplyOverride, NewPresetReplacesOldPresetKeysButKeepsExplicitOnes) {
  ResolvedConfig rc = load_config_text("model: {preset: qwen3-tiny, n_layers: 3}\n", "x.yaml", {});
  ASSERT_TRUE(rc.config.model.qk_norm);
  apply_override(rc, "model.preset=llama-tiny");
  EXPECT_EQ(rc.config.model.arch, "llama");
  EXPECT_FALSE(rc.config.model.qk_norm);
  EXPECT_EQ(rc.config.model.head_dim, 0);
  EXPECT_EQ(rc.config.model.n_layers, 3);
  EXPECT_EQ(rc.origin.at("model.arch"), "preset llama-tiny");
  // The result is what loading with the new preset from the start gives.
  ResolvedConfig fresh =
      load_config_text("model: {preset: llama-tiny, n_layers: 3}\n", "x.yaml", {});
  EXPECT_TRUE(rc.config == fresh.config);
  apply_override(rc, "model.preset=");
  EXPECT_EQ(rc.config.model.hidden_size, Config{}.model.hidden_size);
  EXPECT_EQ(rc.origin.at("model.hidden_size"), "default");
}

TEST(ConfigApplyOverride, WorksOnAHandBuiltConfigWithoutOrigins) {
  ResolvedConfig rc;
  rc.config.train.max_steps = 5;
  apply_override(rc, "model.preset=gpt2-tiny");
  EXPECT_EQ(rc.config.model.arch, "gpt2");
  EXPECT_EQ(rc.config.train.max_steps, 5);
  EXPECT_EQ(rc.origin.at("model.arch"), "preset gpt2-tiny");
  EXPECT_EQ(rc.origin.at("train.max_steps"), "default");
  EXPECT_EQ(rc.origin.size(), config_keys().size());
  validate_config(rc.config, rc.origin);
}

TEST(ConfigDerived, ResolvedModelValuesFillTheAutoDefaults) {
  ModelConfig m;
  m.hidden_size = 256;
  m.n_heads = 4;
  EXPECT_EQ(resolved_activation(m), "silu");
  EXPECT_EQ(resolved_kv_heads(m), 4);
  EXPECT_EQ(resolved_head_dim(m), 64);
  EXPECT_EQ(resolved_intermediate_size(m), 704);  // 8/3*256 = 682 -> 704
  EXPECT_TRUE(uses_rope(m));
  m.arch = "gpt2";
  EXPECT_EQ(resolved_activation(m), "gelu_new");
  EXPECT_EQ(resolved_intermediate_size(m), 1024);
  EXPECT_FALSE(uses_rope(m));
  m.activation = "gelu";
  m.n_kv_heads = 2;
  m.head_dim = 32;
  m.intermediate_size = 100;
  EXPECT_EQ(resolved_activation(m), "gelu");
  EXPECT_EQ(resolved_kv_heads(m), 2);
  EXPECT_EQ(resolved_head_dim(m), 32);
  EXPECT_EQ(resolved_intermediate_size(m), 100);
}

}  // namespace
}  // namespace reef
