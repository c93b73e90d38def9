// `reef data synth` and `reef finetune` end to end with the real binary: a tiny model pretrained
// for a few steps (byte tokenizer, no chat template) is fine-tuned on the synthetic set with
// LoRA, fully and with prompt tuning; a LoRA run interrupted and resumed gives the uninterrupted
// run's per-step losses exactly; bad settings fail with exit code 2 and one line naming the key or
// file:line, writing nothing.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::run_reef;

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::vector<nlohmann::json> out;
  std::istringstream in(read_file(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(nlohmann::json::parse(line));
  return out;
}

class FinetuneCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new testing::ScratchDir();
    const testing::ScratchDir& d = *dir_;
    // Synthetic SFT data, and a base model pretrained for two steps on some text.
    auto r = run_reef({"data", "synth", "--output", d / "synth", "--train", "300", "--test", "40",
                       "--seed", "9"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    std::string text;
    for (int i = 0; i < 200; ++i) text += "Repeat: red cat sun\nAnswer: red cat sun\n\n";
    write_file_atomic(d / "text.txt", text);
    r = run_reef({"pretrain", "--config", "recipes/llama-tiny.yaml", "run.dir=" + d / "base",
                  "data.train_files=[" + d / "text.txt]", "data.valid_files=[]",
                  "train.eval_every=0", "model.hidden_size=64", "model.n_layers=2",
                  "model.n_heads=4", "model.n_kv_heads=2", "data.seq_len=32", "train.max_steps=2",
                  "run.threads=1", "logging.progress=off"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  static void TearDownTestSuite() { delete dir_; }

  // reef finetune from the base run folder (its newest checkpoint) on the synthetic set.
  static testing::ProcResult finetune(const std::string& run, std::vector<std::string> extra) {
    std::vector<std::string> args = {"finetune",
                                     "--model",
                                     *dir_ / "base",
                                     "run.dir=" + run,
                                     "data.train_files=[" + *dir_ / "synth/train.jsonl]",
                                     "data.valid_fraction=0.1",
                                     "data.chat_template=chatml",
                                     "data.seq_len=64",
                                     "train.max_steps=4",
                                     "train.micro_batch_size=4",
                                     "train.eval_every=2",
                                     "train.eval_batches=2",
                                     "optim.lr=3e-3",
                                     "optim.warmup_steps=0",
                                     "run.threads=1",
                                     "logging.progress=off",
                                     "logging.tensorboard=false"};
    args.insert(args.end(), extra.begin(), extra.end());
    return run_reef(args);
  }
  static testing::ScratchDir* dir_;
};

testing::ScratchDir* FinetuneCli::dir_ = nullptr;

TEST_F(FinetuneCli, SynthWritesDisjointDeterministicSets) {
  auto train = read_jsonl(*dir_ / "synth/train.jsonl");
  auto test = read_jsonl(*dir_ / "synth/test.jsonl");
  ASSERT_EQ(train.size(), 300u);
  ASSERT_EQ(test.size(), 40u);
  std::set<std::string> train_prompts, tasks;
  for (const auto& r : train) {
    train_prompts.insert(r["prompt"].get<std::string>());
    tasks.insert(r["task"].get<std::string>());
    ASSERT_EQ(r["completion"].get<std::string>().rfind(' ', 0), 0u);  // " answer"
  }
  EXPECT_EQ(tasks.size(), 6u);
  for (const auto& r : test)
    EXPECT_EQ(train_prompts.count(r["prompt"].get<std::string>()), 0u) << r.dump();
  // Answers are right: spot-check the arithmetic and the reversals.
  for (const auto& r : test) {
    const std::string p = r["prompt"], c = r["completion"];
    if (r["task"] == "add") {
      int a = 0, b = 0;
      ASSERT_EQ(std::sscanf(p.c_str(), "Add: %d + %d", &a, &b), 2);
      EXPECT_EQ(c, " " + std::to_string(a + b));
    }
  }
  auto again = run_reef({"data", "synth", "--output", *dir_ / "synth2", "--train", "300", "--test",
                         "40", "--seed", "9"});
  ASSERT_EQ(again.exit_code, 0);
  EXPECT_EQ(read_file(*dir_ / "synth/train.jsonl"), read_file(*dir_ / "synth2/train.jsonl"));
  auto bad = run_reef({"data", "synth", "--output", *dir_ / "synth3", "--tasks", "repeat,juggle"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.output.find("juggle"), std::string::npos) << bad.output;
  EXPECT_FALSE(path_exists(*dir_ / "synth3/train.jsonl"));
}

TEST_F(FinetuneCli, LoraResumeGivesTheSameLosses) {
  const std::vector<std::string> lora = {
      "peft.method=lora", "peft.target_modules=[q_proj,v_proj,down_proj]", "peft.lora_r=4",
      "checkpoint.every=2", "optim.schedule=constant"};  // the lr must not depend on max_steps
  auto r = finetune(*dir_ / "lora_full", lora);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto want = testing::metric_by_step(*dir_ / "lora_full/metrics.jsonl");
  ASSERT_EQ(want.size(), 4u);
  EXPECT_TRUE(path_exists(*dir_ / "lora_full/checkpoints/step_4/adapter_config.json"));

  auto half = lora;
  half.push_back("train.max_steps=2");
  r = finetune(*dir_ / "lora_resumed", half);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = finetune(*dir_ / "lora_resumed", [&] {
    auto v = lora;
    v.push_back("--resume");
    return v;
  }());
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto got = testing::metric_by_step(*dir_ / "lora_resumed/metrics.jsonl");
  ASSERT_EQ(got.size(), 4u);
  for (const auto& [step, loss] : want) EXPECT_EQ(got.at(step), loss) << "step " << step;

  // Resuming with another adapter shape is refused, naming the key.
  auto other = lora;
  other.push_back("peft.lora_r=8");
  other.push_back("train.max_steps=6");
  other.push_back("--resume");
  r = finetune(*dir_ / "lora_resumed", other);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("peft.lora_r"), std::string::npos) << r.output;
}

TEST_F(FinetuneCli, FullAndPromptTuningRunAndSaveWhatLoads) {
  auto r = finetune(*dir_ / "full", {"train.max_steps=2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // A full fine-tune checkpoint is a model folder: generate runs on it.
  r = run_reef({"generate", "--checkpoint", *dir_ / "full", "--prompt",
                "Repeat: red cat\nAnswer:", "--max-new-tokens", "4", "--temperature", "0"});
  EXPECT_EQ(r.exit_code, 0) << r.output;

  r = finetune(*dir_ / "prompt", {"peft.method=prompt_tuning", "data.packing=false",
                                  "peft.num_virtual_tokens=3", "train.max_steps=2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto cfg =
      nlohmann::json::parse(read_file(*dir_ / "prompt/checkpoints/step_2/adapter_config.json"));
  EXPECT_EQ(cfg["peft_type"], "PROMPT_TUNING");
  EXPECT_EQ(cfg["num_virtual_tokens"], 3);
}

TEST_F(FinetuneCli, BadSettingsFailWithOneLineAndWriteNothing) {
  struct Case {
    std::vector<std::string> extra;
    std::string must_say;
  };
  std::vector<Case> cases = {
      {{"peft.method=prompt_tuning"}, "data.packing=false"},
      {{"peft.method=dora"}, "peft.method"},
      {{"peft.method=lora", "peft.target_modules=[q_prj]"}, "q_prj"},
      {{"data.overlong=ignore"}, "data.overlong"},
      {{"data.seq_len=8", "data.overlong=error"}, "synth/train.jsonl:"},
  };
  int i = 0;
  for (const auto& c : cases) {
    const std::string run = *dir_ / ("bad" + std::to_string(i++));
    auto r = finetune(run, c.extra);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.must_say), std::string::npos) << r.output;
    EXPECT_FALSE(path_exists(run + "/checkpoints")) << run;
  }
  // A malformed record names its file and line.
  write_file_atomic(*dir_ / "broken.jsonl",
                    "{\"prompt\": \"a\\n\", \"completion\": \" b\"}\n{not json\n");
  auto r = finetune(*dir_ / "bad_line", {"data.train_files=[" + *dir_ / "broken.jsonl]"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("broken.jsonl:2"), std::string::npos) << r.output;
  // Without a model to start from.
  r = run_reef({"finetune", "data.train_files=[" + *dir_ / "synth/train.jsonl]",
                "run.dir=" + *dir_ / "nomodel"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("model.init_from"), std::string::npos) << r.output;
}

}  // namespace
}  // namespace reef
