// GRPO's loss against trl (tests/reference/grpo_reference.py): on fixed prompts, completions of
// several lengths, rewards (one unscorable), and old and reference log-probs that differ from
// the model's own so that ratios clip, Reef's loss (align/grpo_loss.h) through the shared train
// step's pieces gives GRPOTrainer._compute_loss's value and every parameter's gradient within
// 1e-5 for each loss type, with and without the KL term, per token and per sequence (GSPO); the
// advantages equal trl's rule for each reward scaling; and the policy's log-probs at the
// sampling temperature equal trl's. `reef align grpo` end to end on that model: a resume in the
// middle of a generation batch or at its start continues with the same rows and numbers; the
// reference of LoRA-GRPO is the base model (KL 0 before the first update); bad settings are
// one-line usage errors.
#include <fmt/format.h>
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "reef/align/grpo_loss.h"
#include "reef/align/rollouts.h"
#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/models/lora.h"
#include "reef/nn/packing.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/batches.h"
#include "testing/testing.h"
#include "trl_parity.h"

namespace reef {
namespace {

using nlohmann::json;

class GrpoReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string src = testing::source_dir() + "/tests/reference/";
    const std::string made = testing::cached_python_output(src + "dpo_reference.py", {"make"});
    model_dir_ = made + "/model";
    ref_ = testing::cached_python_output(src + "grpo_reference.py", {"loss", model_dir_});
    inputs_ = json::parse(read_file(ref_ + "/inputs.json"));
    results_ = json::parse(read_file(ref_ + "/results.json"));
  }

  static constexpr int64_t kPrompt = 5;

  // The fixed rollouts as training rows: values [advantage, old (T), ref (T)].
  static std::vector<RolloutRow> rows(int64_t seq_len) {
    std::vector<RolloutRow> out;
    const auto& p = inputs_["prompt_ids"];
    for (size_t i = 0; i < p.size(); ++i) {
      RolloutRow r;
      r.tokens = p[i].get<std::vector<int32_t>>();
      r.prompt_len = kPrompt;
      const auto& c = inputs_["completion_ids"][i];
      const auto& m = inputs_["completion_mask"][i];
      std::vector<float> old(static_cast<size_t>(seq_len), 0.0f), ref = old;
      for (size_t j = 0; j < c.size(); ++j) {
        if (m[j].get<int>() == 0) continue;
        r.tokens.push_back(c[j].get<int32_t>());
        const size_t at = static_cast<size_t>(kPrompt) + j - 1;  // the input that predicts it
        old[at] = inputs_["old_logps"][i][j].get<float>();
        ref[at] = inputs_["ref_logps"][i][j].get<float>();
      }
      r.values = {inputs_["advantages"]["group"][i].get<float>()};
      r.values.insert(r.values.end(), old.begin(), old.end());
      r.values.insert(r.values.end(), ref.begin(), ref.end());
      out.push_back(std::move(r));
    }
    return out;
  }

  static std::string model_dir_, ref_;
  static json inputs_, results_;
};

std::string GrpoReference::model_dir_, GrpoReference::ref_;
json GrpoReference::inputs_, GrpoReference::results_;

TEST_F(GrpoReference, LossAndGradientsEqualTrl) {
  const int64_t T = kPrompt + inputs_["max_completion_length"].get<int64_t>();
  auto rs = rows(T);
  ASSERT_GE(results_.size(), 9u);
  for (const auto& [name, want] : results_.items()) {
    SCOPED_TRACE(name);
    CausalLM model = load_model_folder(model_dir_, torch::kCPU);
    model->train();
    GrpoLossOptions o;
    o.cfg.loss_type = want["loss_type"].get<std::string>();
    o.cfg.importance_sampling_level = want["level"].get<std::string>();
    o.cfg.beta = want["beta"].get<double>();
    o.cfg.epsilon = want["epsilon"].get<double>();
    o.cfg.epsilon_high = want["epsilon_high"].get<double>();
    o.cfg.use_bias_correction_kl = want["use_bias_correction_kl"].get<bool>();
    o.cfg.temperature = inputs_["temperature"].get<double>();
    o.cfg.max_completion_length = inputs_["max_completion_length"].get<int64_t>();
    o.seq_len = T;
    o.old_logps = true;
    // Without a KL term the rows carry no reference log-probs.
    std::vector<RolloutRow> case_rows = rs;
    if (o.cfg.beta == 0)
      for (auto& r : case_rows) r.values.resize(static_cast<size_t>(1 + T));
    RolloutView v(case_rows, T, 0);
    auto loss = make_grpo_loss(o);
    TrainBatch b = make_train_batch(v, 0, v.num_samples(), model->config().vocab_size, torch::kCPU);
    b.inputs.head_positions = b.targets != kIgnoreTarget;
    PackedSequences packed(b.inputs.position_ids, b.inputs.segment_ids);
    ModelOutputs out;
    out.positions = b.inputs.head_positions;
    out.logits =
        model->forward_train(b.inputs.input_ids, &packed, {}, b.inputs.head_positions).logits;
    LossResult r = loss->compute(out, b, StepTotals{b.n_targets, 1, 1});
    r.objective.backward();
    const double got = r.objective.item<double>(), expect = want["loss"].get<double>();
    EXPECT_NEAR(got, expect, 1e-5 * std::max(1.0, std::fabs(expect)));
    EXPECT_NEAR(r.metrics["loss"], expect, 1e-5 * std::max(1.0, std::fabs(expect)));
    auto grads = load_safetensors(ref_ + "/grads_" + name + ".safetensors");
    ASSERT_FALSE(grads.empty());
    int64_t compared = 0;
    for (const auto& item : model->named_parameters()) {
      auto it = grads.find(item.key());
      ASSERT_TRUE(it != grads.end()) << item.key();
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      const double err = (item.value().grad() - it->second).abs().max().item<double>();
      const double scale = std::max(1e-3, it->second.abs().max().item<double>());
      EXPECT_LT(err / scale, 1e-5) << item.key() << ": max |diff| " << err;
      ++compared;
    }
    EXPECT_EQ(compared, static_cast<int64_t>(grads.size()));
  }
}

TEST_F(GrpoReference, PolicyLogProbsAtTheTemperatureEqualTrl) {
  const int64_t T = kPrompt + inputs_["max_completion_length"].get<int64_t>();
  auto rs = rows(T);
  for (auto& r : rs) r.values = {0.0f};
  CausalLM model = load_model_folder(model_dir_, torch::kCPU);
  fill_token_logps(model, rs, T, 0, 4, inputs_["temperature"].get<double>(), 1, false);
  for (size_t i = 0; i < rs.size(); ++i) {
    const auto& m = inputs_["completion_mask"][i];
    for (size_t j = 0; j < m.size(); ++j) {
      if (m[j].get<int>() == 0) continue;
      const double want = inputs_["logps"][i][j].get<double>();
      EXPECT_NEAR(rs[i].values[1 + kPrompt + j - 1], want, 1e-5) << "row " << i << " token " << j;
    }
  }
}

// The rollouts' own log-probs (the engine's, at sampling) equal the train step's forward on the
// same tokens within 1e-4 (fp32), with and without a LoRA adapter applied in the engine.
TEST_F(GrpoReference, EngineSamplingLogProbsEqualTheTrainersForward) {
  auto tok = load_tokenizer(model_dir_);
  for (bool lora : {false, true}) {
    SCOPED_TRACE(lora ? "lora" : "full");
    CausalLM model = load_model_folder(model_dir_, torch::kCPU);
    if (lora) {
      LoraConfig lc;
      lc.layer.r = 4;
      lc.layer.alpha = 8;
      lc.target_modules = {"all-linear"};
      apply_lora(model, lc);
      torch::NoGradGuard ng;
      torch::manual_seed(9);
      for (auto& [name, p] : lora_named_parameters(model)) p.normal_(0.0, 0.2);  // B != 0
    }
    std::vector<std::vector<int32_t>> prompts;
    for (const auto& p : inputs_["prompt_ids"]) prompts.push_back(p.get<std::vector<int32_t>>());
    prompts.resize(2);
    RolloutOptions ro;
    ro.group = 3;
    ro.sampling.temperature = 1.0;
    ro.sampling.max_new_tokens = 10;
    ro.engine.max_slots = 4;  // fewer slots than sequences: some wait for a free one
    std::vector<Completion> done = generate_completions(model, *tok, prompts, {11, 12}, ro);
    ASSERT_EQ(done.size(), 6u);
    std::vector<RolloutRow> rows;
    int64_t tokens = 0;
    for (size_t k = 0; k < done.size(); ++k) {
      ASSERT_FALSE(done[k].tokens.empty());
      ASSERT_EQ(done[k].tokens.size(), done[k].logprobs.size());
      RolloutRow r;
      r.tokens = prompts[k / 3];
      r.prompt_len = static_cast<int64_t>(r.tokens.size());
      r.tokens.insert(r.tokens.end(), done[k].tokens.begin(), done[k].tokens.end());
      r.values = {0.0f};
      rows.push_back(std::move(r));
      tokens += static_cast<int64_t>(done[k].tokens.size());
    }
    // Different seeds give different completions (the comparison is not of one sequence).
    EXPECT_NE(done[0].tokens, done[1].tokens);
    const int64_t T = kPrompt + 11;
    fill_token_logps(model, rows, T, 0, 4, 1.0, 1, false);
    double worst = 0;
    for (size_t k = 0; k < done.size(); ++k)
      for (size_t j = 0; j < done[k].tokens.size(); ++j) {
        const double trainer = rows[k].values[1 + kPrompt + j - 1];
        worst = std::max(worst, std::fabs(trainer - done[k].logprobs[j]));
      }
    EXPECT_LT(worst, 1e-4) << "over " << tokens << " tokens";
  }
}

TEST_F(GrpoReference, AdvantagesEqualTrlForEachScaling) {
  std::vector<double> rewards;
  for (const auto& r : inputs_["rewards"]) rewards.push_back(r.is_null() ? NAN : r.get<double>());
  const int64_t G = inputs_["group"].get<int64_t>();
  for (const char* scale : {"group", "batch", "none"}) {
    SCOPED_TRACE(scale);
    std::vector<double> got = group_advantages(rewards, G, scale);
    const auto& want = inputs_["advantages"][scale];
    ASSERT_EQ(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i].get<double>(), 1e-9) << i;
  }
  // The unscorable completion gets no advantage.
  EXPECT_EQ(group_advantages(rewards, G, "group")[3], 0.0);
}

// A prompt file: "Say W" with W the expected answer in the metadata.
std::string write_prompts(const std::string& dir) {
  make_dirs(dir);
  const std::string path = dir + "/prompts.jsonl";
  std::string text;
  const char* words[] = {"apple", "river", "stone", "light", "seven", "green", "quiet", "north"};
  for (int i = 0; i < 8; ++i)
    text += fmt::format(R"({{"prompt": "Say {}:", "metadata": {{"answer": "{}"}}}})", words[i],
                        words[i]) +
            "\n";
  write_file_atomic(path, text);
  return path;
}

std::vector<std::string> grpo_args(const std::string& model, const std::string& run,
                                   const std::string& prompts) {
  std::vector<std::string> a = {"align", "grpo",           "--model",
                                model,   "run.dir=" + run, "data.train_files=[" + prompts + "]"};
  for (const auto& o : testing::trl_parity_overrides())
    if (o.rfind("data.seq_len", 0) != 0 && o.rfind("train.micro_batch_size", 0) != 0 &&
        o.rfind("train.max_steps", 0) != 0 && o.rfind("optim.lr", 0) != 0 &&
        o.rfind("optim.min_lr", 0) != 0)
      a.push_back(o);
  for (const char* o :
       {"data.seq_len=32", "train.micro_batch_size=6", "train.max_steps=4", "optim.lr=1e-3",
        "optim.min_lr=1e-3", "grpo.num_generations=3", "grpo.max_completion_length=8",
        "grpo.num_iterations=2", "grpo.rewards=[format]", "checkpoint.every=1",
        // Completions of the random model that hold an "e" score 1: rewards
        // differ within groups, so every step updates the weights.
        "grpo.format_regex='[\\s\\S]*e[\\s\\S]*'", "checkpoint.keep_last=10"})
    a.push_back(o);
  return a;
}

TEST_F(GrpoReference, ResumeContinuesWithTheSameRolloutsAndNumbers) {
  const std::string dir = ::testing::TempDir() + "grpo_resume";
  remove_all(dir);
  const std::string prompts = write_prompts(dir);
  auto args = grpo_args(model_dir_, dir + "/a", prompts);
  auto r = testing::run_reef(args);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // Two generation batches of 2 prompts x 3 completions, each trained on twice.
  ASSERT_TRUE(path_exists(dir + "/a/rollouts/batch_000000.jsonl"));
  ASSERT_TRUE(path_exists(dir + "/a/rollouts/batch_000001.jsonl"));
  const auto loss_a = testing::metric_by_step(dir + "/a/metrics.jsonl", "loss");
  const auto reward_a = testing::metric_by_step(dir + "/a/metrics.jsonl", "reward");
  ASSERT_EQ(loss_a.size(), 4u);
  EXPECT_GT(testing::metric_by_step(dir + "/a/metrics.jsonl", "grad_norm").at(1), 0.0);
  EXPECT_EQ(reward_a.size(), 2u);  // logged at the steps that generate: 1 and 3
  EXPECT_TRUE(reward_a.count(1) && reward_a.count(3));
  // The time split: generating and scoring at the steps that generate, training at every step.
  EXPECT_EQ(testing::metric_by_step(dir + "/a/metrics.jsonl", "time/generation_s").size(), 2u);
  EXPECT_EQ(testing::metric_by_step(dir + "/a/metrics.jsonl", "time/scoring_s").size(), 2u);
  EXPECT_EQ(testing::metric_by_step(dir + "/a/metrics.jsonl", "time/training_s").size(), 4u);
  // From step 3 (the middle of batch 1: its file is read back) and from step 2 (batch 1 is
  // generated again from the same weights, prompts and seeds).
  for (int64_t from : {3, 2}) {
    SCOPED_TRACE(from);
    const std::string b = dir + fmt::format("/b{}", from);
    testing::seed_resume_dir(dir + "/a", b, from);
    if (from == 3) {
      make_dirs(b + "/rollouts");
      write_file_atomic(b + "/rollouts/batch_000001.jsonl",
                        read_file(dir + "/a/rollouts/batch_000001.jsonl"));
    }
    auto args_b = grpo_args(model_dir_, b, prompts);
    args_b.push_back("--resume");
    auto rb = testing::run_reef(args_b);
    ASSERT_EQ(rb.exit_code, 0) << rb.output;
    if (from == 3) EXPECT_NE(rb.output.find("read back"), std::string::npos) << rb.output;
    const auto loss_b = testing::metric_by_step(b + "/metrics.jsonl", "loss");
    for (int64_t s = from + 1; s <= 4; ++s) {
      ASSERT_TRUE(loss_b.count(s)) << s;
      EXPECT_NEAR(loss_b.at(s), loss_a.at(s), 1e-6) << "step " << s;
    }
    if (from == 2) {
      EXPECT_EQ(read_file(b + "/rollouts/batch_000001.jsonl"),
                read_file(dir + "/a/rollouts/batch_000001.jsonl"));
    }
  }
}

TEST_F(GrpoReference, LoraReferenceIsTheBaseModel) {
  const std::string dir = ::testing::TempDir() + "grpo_lora";
  remove_all(dir);
  const std::string prompts = write_prompts(dir);
  for (const char* method : {"lora", "none"}) {
    SCOPED_TRACE(method);
    auto args = grpo_args(model_dir_, dir + "/" + method, prompts);
    args.insert(args.end(),
                {std::string("peft.method=") + method, "peft.target_modules=[all-linear]",
                 "grpo.beta=0.04", "train.max_steps=2", "grpo.num_iterations=1"});
    auto r = testing::run_reef(args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto kl = testing::metric_by_step(dir + "/" + method + "/metrics.jsonl", "kl");
    ASSERT_EQ(kl.size(), 2u);
    EXPECT_NEAR(kl.at(1), 0.0, 1e-7);  // the policy is the reference before its first update
    EXPECT_GT(kl.at(2), 1e-7);         // and moves away after it
  }
  EXPECT_TRUE(path_exists(dir + "/lora/checkpoints/step_2/adapter_model.safetensors"));
}

TEST_F(GrpoReference, BadSettingsAreUsageErrors) {
  const std::string dir = ::testing::TempDir() + "grpo_errors";
  remove_all(dir);
  const std::string prompts = write_prompts(dir);
  struct Case {
    std::string override_, expect;
  };
  for (const Case& c : std::vector<Case>{{"grpo.num_generations=4", "grpo.num_generations=4"},
                                         {"grpo.rewards=[exact]", "grpo.rewards"},
                                         {"grpo.loss_type=ppo", "grpo.loss_type"},
                                         {"parallel.tp=2", "one process"},
                                         {"data.seq_len=8", "grpo.max_completion_length"},
                                         {"train.eval_every=2", "train.eval_every"}}) {
    SCOPED_TRACE(c.override_);
    auto args = grpo_args(model_dir_, dir + "/run", prompts);
    args.push_back(c.override_);
    auto r = testing::run_reef(args);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
  }
  EXPECT_FALSE(path_exists(dir + "/run/checkpoints"));
}

}  // namespace
}  // namespace reef
