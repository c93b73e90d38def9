// Tests for config errors: every class of mistake is one usage-kind line (exit code 2) that
// names the dotted key, where its value came from (file:line or command line) and what was
// expected, with a did-you-mean for near misses.
#include <gtest/gtest.h>

#include "config_testing.h"
#include "reef/config/config.h"
#include "testing/testing.h"

namespace reef {
namespace {

using config_testing::usage_message;
using config_testing::write_yaml;

std::string cl_error(const std::vector<std::string>& overrides) {
  return usage_message([&] { load_config("", overrides); });
}

TEST(ConfigErrors, UnknownKeyInFileNamesFileLineAndSuggests) {
  testing::ScratchDir dir;
  std::string path = write_yaml(dir.path(), "a.yaml",
                                "run:\n"
                                "  dir: runs/a\n"
                                "\n"
                                "# training\n"
                                "train:\n"
                                "  micro_batch_size: 2\n"
                                "  max_step: 5\n");
  std::string msg = usage_message([&] { load_config(path, {}); });
  EXPECT_EQ(msg, "unknown key 'train.max_step' (" + path + ":7); did you mean 'train.max_steps'?");
}

TEST(ConfigErrors, UnknownKeyOnCommandLineSuggests) {
  EXPECT_EQ(cl_error({"train.max_step=5"}),
            "unknown key 'train.max_step' (command line); did you mean 'train.max_steps'?");
  // The right key in the wrong section is a near miss too.
  EXPECT_EQ(cl_error({"train.lr=0.1"}),
            "unknown key 'train.lr' (command line); did you mean 'optim.lr'?");
  // A misspelt section inside a dotted key.
  EXPECT_EQ(cl_error({"trian.max_steps=5"}),
            "unknown key 'trian.max_steps' (command line); did you mean 'train.max_steps'?");
}

TEST(ConfigErrors, UnknownKeyWithoutNearMissListsTheSectionKeys) {
  std::string msg = cl_error({"checkpoint.frobnicate=1"});
  EXPECT_HAS(msg, "unknown key 'checkpoint.frobnicate' (command line); keys of 'checkpoint': ");
  EXPECT_HAS(msg, "every, keep_last, save_optimizer");
}

TEST(ConfigErrors, UnknownSectionInFileSuggests) {
  std::string msg = usage_message(
      [] { load_config_text("run: {dir: x}\ntrian:\n  max_steps: 5\n", "r.yaml", {}); });
  EXPECT_EQ(msg, "unknown section 'trian' (r.yaml:2); did you mean 'train'?");
  msg = usage_message([] { load_config_text("zzzzzzzz: 1\n", "r.yaml", {}); });
  EXPECT_HAS(msg, "unknown section 'zzzzzzzz' (r.yaml:1); sections: run, model, data, train");
  // A key written at the top level instead of under its section.
  msg = usage_message([] { load_config_text("max_steps: 5\n", "r.yaml", {}); });
  EXPECT_EQ(msg, "unknown section 'max_steps' (r.yaml:1); did you mean 'train.max_steps'?");
}

TEST(ConfigErrors, WrongTypesNameKeyValueAndSource) {
  EXPECT_EQ(cl_error({"train.max_steps=abc"}),
            "train.max_steps: expected an integer, got 'abc' (command line)");
  EXPECT_EQ(cl_error({"train.max_steps=1.5"}),
            "train.max_steps: expected an integer, got '1.5' (command line)");
  EXPECT_EQ(cl_error({"train.max_steps="}),
            "train.max_steps: expected an integer, got nothing (command line)");
  EXPECT_EQ(cl_error({"optim.lr=fast"}), "optim.lr: expected a number, got 'fast' (command line)");
  EXPECT_EQ(cl_error({"logging.tensorboard=yes"}),
            "logging.tensorboard: expected true or false, got 'yes' (command line)");
  EXPECT_EQ(cl_error({"logging.tensorboard=1"}),
            "logging.tensorboard: expected true or false, got '1' (command line)");
  EXPECT_EQ(cl_error({"run.dir=[a, b]"}), "run.dir: expected a string, got a list (command line)");
  EXPECT_EQ(cl_error({"data.train_files={a: 1}"}),
            "data.train_files: expected a list of strings, got a map (command line)");
  EXPECT_HAS(cl_error({"data.train_files=[a, [b]]"}),
             "data.train_files: expected a list of strings");
  EXPECT_HAS(cl_error({"data.train_files=[a"}),
             "data.train_files: expected a list of strings, got '[a'");
}

TEST(ConfigErrors, WrongTypeInFileNamesItsLine) {
  std::string text =
      "model:\n"
      "  n_layers: 2\n"
      "train: {micro_batch_size: 2,\n"
      "        max_steps: 1.5}\n";
  EXPECT_EQ(usage_message([&] { load_config_text(text, "recipes/b.yaml", {}); }),
            "train.max_steps: expected an integer, got '1.5' (recipes/b.yaml:4)");
  EXPECT_EQ(usage_message([] { load_config_text("optim:\n  lr: {a: 1}\n", "c.yaml", {}); }),
            "optim.lr: expected a number, got a map (c.yaml:2)");
  EXPECT_EQ(usage_message([] { load_config_text("run:\n  dir: [a]\n", "c.yaml", {}); }),
            "run.dir: expected a string, got a list (c.yaml:2)");
}

TEST(ConfigErrors, OverrideWithoutEquals) {
  std::string msg = cl_error({"train.max_steps"});
  EXPECT_HAS(msg, "override 'train.max_steps' has no '=' (command line)");
  EXPECT_HAS(msg, "expected key=value");
  EXPECT_HAS(cl_error({"=5"}), "has no key before '='");
}

TEST(ConfigErrors, SectionAssignedAScalar) {
  EXPECT_EQ(usage_message([] { load_config_text("run: {dir: a}\ntrain: 5\n", "s.yaml", {}); }),
            "train: expected a section (a map of keys such as train.max_steps), got '5' "
            "(s.yaml:2)");
  EXPECT_EQ(usage_message([] { load_config_text("model: [1, 2]\n", "s.yaml", {}); }),
            "model: expected a section (a map of keys such as model.preset), got a list "
            "(s.yaml:1)");
  EXPECT_EQ(cl_error({"train=5"}),
            "train: expected a section (a map of keys such as train.max_steps), got '5' "
            "(command line)");
  EXPECT_HAS(usage_message([] { load_config_text("- a\n- b\n", "s.yaml", {}); }),
             "expected a map of sections");
}

TEST(ConfigErrors, DuplicateKeyInFileNamesBothLines) {
  std::string msg = usage_message([] {
    load_config_text("train:\n  max_steps: 1\nmodel: {}\ntrain.max_steps: 2\n", "d.yaml", {});
  });
  EXPECT_EQ(msg, "duplicate key 'train.max_steps' (d.yaml:4); already set at d.yaml:2");
}

struct BadValue {
  std::vector<std::string> overrides;
  std::string key;       // the message must start with "<key>: expected"
  std::string expected;  // and contain this
};

TEST(ConfigErrors, ImpossibleValuesNameKeyExpectationAndCommandLine) {
  const std::vector<BadValue> cases = {
      {{"optim.lr=-1"}, "optim.lr", "expected a number > 0, got -1 (command line)"},
      {{"optim.lr=0"}, "optim.lr", "expected a number > 0, got 0 (command line)"},
      {{"optim.lr=1e-3", "optim.min_lr=0.01"},
       "optim.min_lr",
       "expected a value <= optim.lr (optim.lr = 0.001 from command line), got 0.01"},
      {{"optim.min_lr=-1"}, "optim.min_lr", "expected a value >= 0, got -1"},
      {{"optim.weight_decay=-0.1"}, "optim.weight_decay", "expected a value >= 0, got -0.1"},
      {{"optim.beta1=1"}, "optim.beta1", "expected a number in [0, 1), got 1"},
      {{"optim.beta2=-0.5"}, "optim.beta2", "expected a number in [0, 1), got -0.5"},
      {{"optim.eps=0"}, "optim.eps", "expected a number > 0"},
      {{"optim.warmup_steps=-1"}, "optim.warmup_steps", "expected a value >= 0"},
      {{"optim.lr=.nan"}, "optim.lr", "expected a finite number, got .nan"},
      {{"train.max_steps=0"}, "train.max_steps", "expected a value >= 1, got 0 (command line)"},
      {{"train.micro_batch_size=0"}, "train.micro_batch_size", "expected a value >= 1, got 0"},
      {{"train.grad_accum=-2"}, "train.grad_accum", "expected a value >= 1, got -2"},
      {{"train.clip_grad=-1"}, "train.clip_grad", "expected a value >= 0"},
      {{"train.eval_every=-1"}, "train.eval_every", "expected a value >= 0, got -1"},
      {{"train.eval_batches=0"}, "train.eval_batches", "expected a value >= 1"},
      {{"checkpoint.keep_last=-1"}, "checkpoint.keep_last", "expected a value >= 0, got -1"},
      {{"checkpoint.every=-5"}, "checkpoint.every", "expected a value >= 0"},
      {{"logging.every=0"}, "logging.every", "expected a value >= 1"},
      {{"run.threads=-1"}, "run.threads", "expected a value >= 0"},
      {{"run.dir="}, "run.dir", "expected a folder for the run"},
      {{"model.n_layers=0"}, "model.n_layers", "expected a value >= 1, got 0"},
      {{"model.n_heads=0"}, "model.n_heads", "expected a value >= 1, got 0"},
      {{"model.hidden_size=130"},
       "model.hidden_size",
       "expected a multiple of model.n_heads when model.head_dim is 0 (model.n_heads = 4 from "
       "default), got 130 (command line)"},
      {{"model.n_kv_heads=3"},
       "model.n_kv_heads",
       "expected a divisor of model.n_heads (model.n_heads = 4 from default), got 3"},
      {{"model.head_dim=33"},
       "model.head_dim",
       "expected an even width for rotary embeddings (arch llama), got 33 (command line)"},
      {{"model.hidden_size=132"},
       "model.hidden_size",
       "expected hidden_size / n_heads to be even for rotary embeddings (model.n_heads = 4 from "
       "default), or an even model.head_dim, got 132 (command line); that is a head width of 33"},
      {{"model.max_seq_len=64"},
       "data.seq_len",
       "expected a value <= model.max_seq_len (model.max_seq_len = 64 from command line), got "
       "128 (default)"},
      {{"data.seq_len=512"},
       "data.seq_len",
       "expected a value <= model.max_seq_len (model.max_seq_len = 256 from default), got 512 "
       "(command line)"},
      {{"data.valid_fraction=1"}, "data.valid_fraction", "expected a number in [0, 1), got 1"},
      {{"data.valid_fraction=-0.1"}, "data.valid_fraction", "expected a number in [0, 1)"},
      {{"data.format=csv"}, "data.format", "expected one of auto, text, jsonl, got 'csv'"},
      {{"data.tokenizer=gpt"}, "data.tokenizer", "expected byte, or a path"},
      {{"model.norm_eps=0"}, "model.norm_eps", "expected a number > 0"},
      {{"model.rope_scaling=llama3", "model.rope_high_freq_factor=0.5"},
       "model.rope_high_freq_factor",
       "expected a value > model.rope_low_freq_factor"},
      {{"model.arch=gpt2", "model.rope_scaling=linear"},
       "model.rope_scaling",
       "expected none (gpt2 has learned positions, not RoPE)"},
      {{"model.arch=gpt2", "model.n_kv_heads=2"},
       "model.n_kv_heads",
       "gpt2 has no grouped-query attention"},
  };
  for (const BadValue& c : cases) {
    std::string msg = cl_error(c.overrides);
    EXPECT_EQ(msg.rfind(c.key + ": expected", 0), 0u) << msg;
    EXPECT_HAS(msg, c.expected);
    EXPECT_HAS(msg, "command line");
  }
}

TEST(ConfigErrors, SequenceParallelNeedsTheSequenceToSplitOverTheTpRanks) {
  std::string msg =
      cl_error({"parallel.tp=4", "parallel.sequence_parallel=true", "data.seq_len=30"});
  EXPECT_HAS(msg, "data.seq_len=30 is not divisible by parallel.tp=4");
  EXPECT_HAS(msg, "(data.seq_len from command line, parallel.sequence_parallel from command line)");
  EXPECT_HAS(msg, "set data.seq_len=28");
  // Without tp, or with a sequence that splits, there is nothing to say.
  for (const auto& ok : std::vector<std::vector<std::string>>{
           {"parallel.sequence_parallel=true", "data.seq_len=30"},
           {"parallel.tp=4", "parallel.sequence_parallel=true", "data.seq_len=32"},
           {"parallel.tp=4", "data.seq_len=30"}})
    EXPECT_NO_THROW(load_config("", ok)) << ok.back();
}

TEST(ConfigErrors, TensorParallelCombinationsThatDoNotWorkNameTheirKeys) {
  std::string msg = cl_error({"parallel.tp=2", "peft.method=lora"});
  EXPECT_HAS(msg,
             "parallel.tp=2 (command line): peft.method=lora (command line) is not supported with "
             "tensor parallelism");
  msg = cl_error({"parallel.pp=2", "peft.method=lora"});
  EXPECT_HAS(msg,
             "parallel.pp=2 (command line): peft.method=lora (command line) is not supported with "
             "pipeline parallelism");
  msg = cl_error({"parallel.tp=2", "parallel.pp=2", "checkpoint.layout=consolidated"});
  EXPECT_HAS(msg,
             "checkpoint.layout=consolidated (command line): with parallel.tp=2 and parallel.pp=2 "
             "together "
             "checkpoints are distributed; use checkpoint.layout=auto");
  for (const auto& ok :
       std::vector<std::vector<std::string>>{{"parallel.tp=2", "parallel.pp=2"},
                                             {"parallel.tp=2", "checkpoint.layout=consolidated"},
                                             {"parallel.pp=2", "checkpoint.layout=consolidated"}})
    EXPECT_NO_THROW(load_config("", ok)) << ok.back();
}

TEST(ConfigErrors, UnknownNamesListTheAllowedOnesAndSuggest) {
  EXPECT_EQ(
      cl_error({"model.arch=lama"}),
      "model.arch: expected one of llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2, got 'lama' "
      "(command line); did you mean 'llama'?");
  EXPECT_EQ(cl_error({"optim.schedule=cosin"}),
            "optim.schedule: expected one of cosine, linear, constant, got 'cosin' (command "
            "line); did you mean 'cosine'?");
  EXPECT_HAS(cl_error({"train.precision=fp16"}),
             "train.precision: expected one of fp32, bf16, got 'fp16' (command line)");
  EXPECT_HAS(cl_error({"model.rope_scaling=yarn"}),
             "model.rope_scaling: expected one of none, linear, llama3, got 'yarn'");
  EXPECT_HAS(cl_error({"model.activation=swish"}),
             "model.activation: expected one of auto, silu, gelu, gelu_new, gelu_pytorch_tanh, "
             "relu, got 'swish'");
  EXPECT_HAS(cl_error({"logging.progress=maybe"}),
             "logging.progress: expected one of auto, on, off, got 'maybe'");
  EXPECT_EQ(cl_error({"run.device=tpu"}),
            "run.device: expected cpu, cuda or cuda:N, got 'tpu' (command line)");
  EXPECT_HAS(cl_error({"run.device=cuda:x"}), "run.device: expected cpu, cuda or cuda:N");
  EXPECT_HAS(cl_error({"optim.name=sgd"}), "optim.name: expected one of adamw, got 'sgd'");
}

TEST(ConfigErrors, ImpossibleValueInFileNamesItsLine) {
  std::string text =
      "train:\n"
      "  max_steps: 10\n"
      "optim:\n"
      "  lr: 1e-3\n"
      "  min_lr: 1e-2\n";
  EXPECT_EQ(usage_message([&] { load_config_text(text, "recipes/m.yaml", {}); }),
            "optim.min_lr: expected a value <= optim.lr (optim.lr = 0.001 from "
            "recipes/m.yaml:4), got 0.01 (recipes/m.yaml:5)");
  std::string preset_text = "model: {preset: llama-tiny}\ndata: {seq_len: 300}\n";
  EXPECT_EQ(usage_message([&] { load_config_text(preset_text, "p.yaml", {}); }),
            "data.seq_len: expected a value <= model.max_seq_len (model.max_seq_len = 256 from "
            "preset llama-tiny), got 300 (p.yaml:2)");
}

TEST(ConfigErrors, UnknownPresetListsPresetsAndSuggests) {
  std::string msg = cl_error({"model.preset=llama-tny"});
  EXPECT_HAS(msg, "model.preset: unknown preset 'llama-tny' (command line); expected one of ");
  EXPECT_HAS(msg, "; did you mean 'llama-tiny'?");
  EXPECT_HAS(msg, "gpt2-tiny");
  EXPECT_HAS(msg, "qwen3-0.6b");
  EXPECT_HAS(cl_error({"model.preset=qwen3"}), "; did you mean 'qwen3-");
  msg = usage_message(
      [] { load_config_text("\nmodel:\n  preset: nothing-like-it\n", "p.yaml", {}); });
  EXPECT_HAS(msg, "model.preset: unknown preset 'nothing-like-it' (p.yaml:3); expected one of ");
}

TEST(ConfigErrors, MissingAndMalformedFiles) {
  EXPECT_EQ(usage_message([] { load_config("no/such/x.yaml", {}); }),
            "config file not found: no/such/x.yaml");
  testing::ScratchDir dir;
  EXPECT_HAS(usage_message([&] { load_config(dir.path(), {}); }), "config file is a directory");
  std::string path = write_yaml(dir.path(), "bad.yaml",
                                "run:\n"
                                "  dir: x\n"
                                "train:\n"
                                "  max_steps: 5\n"
                                "   lr: 3\n");
  EXPECT_EQ(usage_message([&] { load_config(path, {}); }),
            "malformed YAML (" + path + ":5): illegal map value");
  path = write_yaml(dir.path(), "bad2.yaml", "run:\n  dir: x\ntrain:\n  max_steps: [1, 2\n");
  EXPECT_HAS(usage_message([&] { load_config(path, {}); }), "malformed YAML (" + path + ":");
}

TEST(ConfigErrors, ValidateConfigReportsOriginsItIsGiven) {
  Config cfg;
  cfg.train.micro_batch_size = 0;
  EXPECT_EQ(usage_message([&] {
              validate_config(cfg, {{"train.micro_batch_size", "x.yaml:3"}});
            }),
            "train.micro_batch_size: expected a value >= 1, got 0 (x.yaml:3)");
  EXPECT_EQ(usage_message([&] { validate_config(cfg, {}); }),
            "train.micro_batch_size: expected a value >= 1, got 0 (default)");
}

}  // namespace
}  // namespace reef
