// apply_lora on a CausalLM (models/lora.h): PEFT's target_modules rules (suffixes, all-linear
// without lm_head, a full-name regex), the base frozen and only A/B returned as trainable,
// errors that list the available modules, and merge_lora giving back the base architecture's
// parameters with the same logits.
#include "reef/models/lora.h"

#include <gtest/gtest.h>

#include <functional>
#include <set>

#include "reef/base/error.h"

namespace reef {
namespace {

CausalLM tiny(const std::string& arch = "llama") {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 32;
  c.hidden_size = 16;
  c.n_layers = 2;
  c.n_heads = 2;
  c.max_seq_len = 16;
  torch::manual_seed(3);
  return CausalLM(c);
}

LoraConfig targets(std::vector<std::string> t) {
  LoraConfig c;
  c.target_modules = std::move(t);
  c.layer.r = 2;
  c.layer.init_weights = false;
  return c;
}

std::string message_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  ADD_FAILURE() << "no reef::Error";
  return "";
}

TEST(ApplyLora, SuffixesPickTheirLayersAndFreezeTheBase) {
  auto model = tiny();
  auto trainable = apply_lora(model, targets({"q_proj", "v_proj"}));
  EXPECT_EQ(trainable.size(), 8u);  // 2 layers x (q, v) x (A, B)
  std::set<std::string> lora;
  for (const auto& [name, t] : lora_named_parameters(model)) lora.insert(name);
  const std::set<std::string> want = {"model.layers.0.self_attn.q_proj.lora_A.weight",
                                      "model.layers.0.self_attn.q_proj.lora_B.weight",
                                      "model.layers.0.self_attn.v_proj.lora_A.weight",
                                      "model.layers.0.self_attn.v_proj.lora_B.weight",
                                      "model.layers.1.self_attn.q_proj.lora_A.weight",
                                      "model.layers.1.self_attn.q_proj.lora_B.weight",
                                      "model.layers.1.self_attn.v_proj.lora_A.weight",
                                      "model.layers.1.self_attn.v_proj.lora_B.weight"};
  EXPECT_EQ(lora, want);
  for (const auto& p : model->named_parameters())
    EXPECT_EQ(p.value().requires_grad(), lora.count(p.key()) == 1) << p.key();
  // Only the branch gets gradients.
  auto ids = torch::randint(0, 32, {2, 5});
  model(ids).sum().backward();
  for (const auto& p : model->named_parameters())
    EXPECT_EQ(p.value().grad().defined(), lora.count(p.key()) == 1) << p.key();
}

TEST(ApplyLora, AllLinearLeavesOutLmHead) {
  auto model = tiny();
  const std::vector<std::string> want = {"down_proj", "gate_proj", "k_proj", "o_proj",
                                         "q_proj",    "up_proj",   "v_proj"};
  EXPECT_EQ(lora_target_suffixes(model, targets({"all-linear"})), want);
  apply_lora(model, targets({"all-linear"}));
  EXPECT_EQ(lora_named_parameters(model).size(), 2u * 7 * 2);
  EXPECT_FALSE(model->lm_head->has_lora());
}

TEST(ApplyLora, RegexMatchesWholeNames) {
  auto model = tiny();
  LoraConfig c = targets({});
  c.target_regex = R"(model\.layers\.1\..*_proj)";
  auto names = lora_target_names(model, c);
  EXPECT_EQ(names.size(), 7u);
  for (const auto& n : names) EXPECT_EQ(n.rfind("model.layers.1.", 0), 0u) << n;
  c.target_regex = "q_proj";  // a full match, so no module's whole name
  EXPECT_NE(message_of([&] { lora_target_names(model, c); }).find("matches no Linear"),
            std::string::npos);
}

TEST(ApplyLora, UnknownTargetsListTheAvailableModules) {
  auto model = tiny();
  const auto msg = message_of([&] { apply_lora(model, targets({"q_proj", "qproj"})); });
  EXPECT_NE(msg.find("'qproj'"), std::string::npos) << msg;
  EXPECT_NE(msg.find("q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj, lm_head"),
            std::string::npos)
      << msg;
  EXPECT_TRUE(lora_named_parameters(model).empty());
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.requires_grad());  // nothing changed
  EXPECT_NE(message_of([&] { apply_lora(model, targets({})); }).find("empty"), std::string::npos);
  LoraConfig zero_rank = targets({"q_proj"});
  zero_rank.layer.r = 0;
  EXPECT_NE(message_of([&] { apply_lora(model, zero_rank); }).find("rank"), std::string::npos);
  for (const auto& p : model->parameters()) EXPECT_TRUE(p.requires_grad());
  auto gpt2 = tiny("gpt2");
  EXPECT_NE(message_of([&] { apply_lora(gpt2, targets({"c_attn"})); }).find("gpt2"),
            std::string::npos);
}

TEST(ApplyLora, MergeRestoresTheBaseParametersWithTheSameLogits) {
  auto model = tiny();
  std::vector<std::string> base_names = model->named_parameters().keys();
  apply_lora(model, targets({"all-linear"}));
  EXPECT_THROW(apply_lora(model, targets({"q_proj"})), Error);
  model->eval();
  auto ids = torch::randint(0, 32, {2, 6});
  torch::NoGradGuard ng;
  auto before = model(ids);
  EXPECT_EQ(merge_lora(model), 14);
  EXPECT_EQ(model->named_parameters().keys(), base_names);
  EXPECT_LE((model(ids) - before).abs().max().item<double>(), 1e-5);
  EXPECT_EQ(merge_lora(model), 0);
}

}  // namespace
}  // namespace reef
