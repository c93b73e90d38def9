// Tests for config_to_yaml: every field with its comment, sections in order, and a round trip
// that reads back the identical Config, including awkward strings and doubles.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>

#include "config_testing.h"
#include "reef/config/config.h"

namespace reef {
namespace {

std::vector<std::string> lines_of(const std::string& text) {
  std::vector<std::string> out;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) out.push_back(line);
  return out;
}

Config round_trip(const Config& cfg, bool with_comments) {
  return load_config_text(config_to_yaml(cfg, with_comments), "dump.yaml", {}).config;
}

TEST(ConfigYaml, EveryFieldAppearsOnceWithItsCommentInSectionOrder) {
  std::string yaml = config_to_yaml(Config{});
  std::vector<std::string> lines = lines_of(yaml);
  std::vector<std::string> sections;
  size_t field_lines = 0;
  for (const std::string& line : lines) {
    if (line.empty()) continue;
    if (line[0] != ' ') {
      sections.push_back(line);
      continue;
    }
    ++field_lines;
  }
  EXPECT_EQ(sections,
            (std::vector<std::string>{"run:", "model:", "data:", "train:", "optim:", "checkpoint:",
                                      "logging:", "parallel:", "peft:", "dpo:", "rm:", "grpo:"}));
  EXPECT_EQ(field_lines, config_keys().size());
  for (const ConfigKey& k : config_keys()) {
    std::string name = k.key.substr(k.key.find('.') + 1);
    std::string expected = "  " + name + ": " + k.default_value + "  # " + k.comment;
    EXPECT_NE(std::find(lines.begin(), lines.end(), expected), lines.end()) << expected;
  }
  EXPECT_HAS(yaml, "run:\n  dir: runs/default  # run folder:");
  EXPECT_HAS(yaml, "  max_steps: 100  # optimizer steps to run\n");
  EXPECT_HAS(yaml, "  lr: 0.0003  # peak learning rate\n");
  EXPECT_HAS(yaml, "  rope_theta: 10000.0  # RoPE base frequency\n");
  EXPECT_HAS(yaml, "  norm_eps: 1.0e-05  #");
  EXPECT_HAS(yaml, "  train_files: []  #");
  EXPECT_HAS(yaml, "  preset: \"\"  #");
  EXPECT_HAS(yaml, "  tie_embeddings: false  #");
}

TEST(ConfigYaml, WithoutCommentsHasNoHashes) {
  std::string yaml = config_to_yaml(Config{}, false);
  EXPECT_EQ(yaml.find('#'), std::string::npos);
  EXPECT_HAS(yaml, "train:\n  max_steps: 100\n");
}

TEST(ConfigYaml, DefaultsRoundTrip) {
  EXPECT_TRUE(round_trip(Config{}, true) == Config{});
  EXPECT_TRUE(round_trip(Config{}, false) == Config{});
}

TEST(ConfigYaml, AwkwardValuesRoundTripExactly) {
  Config cfg;
  cfg.run.dir = "runs/it's a \"test\": #1\\x";
  cfg.run.seed = -9223372036854775807LL;
  cfg.run.device = "cuda:3";
  cfg.data.text_key = "null";
  cfg.data.train_files = {"a,b.txt", "[c].txt", "true", "~",     " lead", "tab\there",
                          "ünï.txt", "-dash",   "x: y", "#hash", "1.5",   "multi\nline"};
  cfg.data.valid_files = {};
  cfg.data.format = "jsonl";
  cfg.optim.lr = 0.1 + 0.2;
  cfg.optim.min_lr = 1.0 / 3.0 * 0.1;
  cfg.optim.eps = 1e-300;
  cfg.optim.weight_decay = 0.0;
  cfg.optim.beta2 = 0.999;
  cfg.model.rope_theta = 1e20;
  cfg.model.init_std = std::numeric_limits<double>::denorm_min();
  cfg.model.norm_eps = 3.0;
  cfg.model.rope_factor = 123456789.125;
  cfg.model.vocab_size = 151936;
  cfg.model.tie_embeddings = true;
  cfg.checkpoint.save_optimizer = false;
  for (bool comments : {true, false}) {
    Config back = round_trip(cfg, comments);
    EXPECT_TRUE(back == cfg) << config_to_yaml(back);
    EXPECT_EQ(back.data.train_files, cfg.data.train_files);
    EXPECT_EQ(back.run.dir, cfg.run.dir);
    EXPECT_EQ(back.optim.lr, 0.1 + 0.2);
  }
  std::string yaml = config_to_yaml(cfg);
  EXPECT_HAS(yaml, "  lr: 0.30000000000000004  #");
  EXPECT_HAS(yaml, "  eps: 1.0e-300  #");
  EXPECT_HAS(yaml, "  rope_theta: 1.0e+20  #");
  EXPECT_HAS(yaml, "  weight_decay: 0.0  #");
}

TEST(ConfigYaml, DoublesAlwaysReadAsFloats) {
  // A YAML 1.1 reader (PyYAML) sees a float only with a '.', so every double has one.
  std::string yaml = config_to_yaml(Config{}, false);
  for (const ConfigKey& k : config_keys()) {
    if (k.type != "float") continue;
    EXPECT_NE(k.default_value.find('.'), std::string::npos) << k.key << ": " << k.default_value;
  }
}

TEST(ConfigYaml, PresetConfigsRoundTrip) {
  for (const auto& [name, keys] : model_presets()) {
    ResolvedConfig rc = load_config("", {"model.preset=" + name});
    EXPECT_TRUE(round_trip(rc.config, true) == rc.config) << name;
  }
}

TEST(ConfigYaml, ConfigEqualityNoticesEveryField) {
  Config a, b;
  EXPECT_TRUE(a == b);
  b.logging.metrics_jsonl = false;
  EXPECT_TRUE(a != b);
  b = a;
  b.data.valid_files = {"x"};
  EXPECT_TRUE(a != b);
  b = a;
  b.optim.lr = std::nextafter(a.optim.lr, 1.0);
  EXPECT_TRUE(a != b);
}

}  // namespace
}  // namespace reef
