// GRPO's loss against trl (tests/reference/grpo_reference.py): on fixed prompts, completions of
// several lengths, rewards (one unscorable), and old and reference log-probs that differ from
// the model's own so that ratios clip, Reef's loss (align/grpo_loss.h) through the shared train
// step's pieces gives GRPOTrainer._compute_loss's value and every parameter's gradient within
// 1e-5 for each loss type, with and without the KL term, per token and per sequence (GSPO); the
// advantages equal trl's rule for each reward scaling; and the policy's log-probs at the
// sampling temperature equal trl's.
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
#include "reef/nn/packing.h"
#include "reef/train/batches.h"
#include "testing/testing.h"

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

}  // namespace
}  // namespace reef
