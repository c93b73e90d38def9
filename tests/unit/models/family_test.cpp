// The family registry: every arch resolves to its family, an unknown arch is refused with the
// registry's whole list, the catalog config/ reads comes from the same families, and the
// tensor-parallel plan (data in models/<family>/) gives each llama / qwen3 layer its style.
#include "reef/models/family.h"

#include <gtest/gtest.h>

#include <set>

#include "reef/base/error.h"

namespace reef {
namespace {

TEST(ModelFamilies, EveryArchResolvesToItsFamily) {
  const std::map<std::string, std::string> expected = {
      {"llama", "llama"}, {"mistral", "llama"}, {"mixtral", "llama"}, {"qwen2", "llama"},
      {"qwen3", "llama"}, {"gemma", "llama"},   {"gpt2", "gpt2"}};
  EXPECT_EQ(supported_archs().size(), expected.size());
  for (const auto& arch : supported_archs()) {
    ASSERT_EQ(expected.count(arch), 1u) << arch;
    EXPECT_EQ(model_family(arch).name, expected.at(arch)) << arch;
    EXPECT_EQ(find_model_family(arch), &model_family(arch));
  }
  // Each arch belongs to exactly one family.
  std::set<std::string> seen;
  for (const ModelFamily* f : model_families())
    for (const auto& a : f->archs) EXPECT_TRUE(seen.insert(a).second) << a;
  EXPECT_TRUE(is_llama_family("qwen3"));
  EXPECT_FALSE(is_llama_family("gpt2"));
  EXPECT_FALSE(is_llama_family("bert"));
}

TEST(ModelFamilies, UnknownArchListsEveryArchOfTheRegistry) {
  EXPECT_EQ(find_model_family("bert"), nullptr);
  try {
    model_family("bert");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("'bert'"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(supported_archs_list()), std::string::npos) << e.what();
  }
  EXPECT_EQ(supported_archs_list(), "llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2");
  ModelConfig c;
  c.arch = "bert";
  try {
    resolve_model_config(c);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()),
              "model.arch: expected one of " + supported_archs_list() + ", got 'bert'");
  }
}

TEST(ModelFamilies, CatalogForConfigComesFromTheFamilies) {
  install_model_families();
  const ModelCatalog& k = model_catalog();
  EXPECT_EQ(k.archs, supported_archs());
  for (const char* preset : {"llama-tiny", "qwen3-tiny", "mixtral-tiny", "gemma-tiny", "gpt2-tiny",
                             "gpt2", "llama-3.2-1b"})
    EXPECT_EQ(k.presets.count(preset), 1u) << preset;
  for (const auto& [name, keys] : k.presets) {
    ASSERT_EQ(keys.count("model.arch"), 1u) << name;
    EXPECT_NE(find_model_family(keys.at("model.arch")), nullptr) << name;
  }
  ModelConfig m;
  m.arch = "gpt2";
  EXPECT_FALSE(k.uses_rope(m));
  EXPECT_EQ(k.derive(m).activation, "gelu_new");
}

TEST(TensorParallelPlan, LlamaLayerStyles) {
  const auto& plan = model_family("llama").tp_plan;
  auto style = [&](const std::string& name) { return tp_style(plan, name); };
  EXPECT_EQ(style("model.embed_tokens"), TpStyle::kVocab);
  EXPECT_EQ(style("lm_head"), TpStyle::kVocab);
  EXPECT_EQ(style("model.layers.0.self_attn"), TpStyle::kGatherInput);
  EXPECT_EQ(style("model.layers.0.mlp"), TpStyle::kGatherInput);
  for (const char* p : {"q_proj", "k_proj", "v_proj"})
    EXPECT_EQ(style(std::string("model.layers.3.self_attn.") + p), TpStyle::kColumn) << p;
  EXPECT_EQ(style("model.layers.3.self_attn.o_proj"), TpStyle::kRow);
  EXPECT_EQ(style("model.layers.11.mlp.gate_proj"), TpStyle::kColumn);
  EXPECT_EQ(style("model.layers.11.mlp.up_proj"), TpStyle::kColumn);
  EXPECT_EQ(style("model.layers.11.mlp.down_proj"), TpStyle::kRow);
  // Replicated: norms and anything the plan does not name.
  EXPECT_FALSE(style("model.layers.0.input_layernorm"));
  EXPECT_FALSE(style("model.layers.0.post_attention_layernorm"));
  EXPECT_FALSE(style("model.norm"));
  EXPECT_FALSE(style("model.layers.0.self_attn.q_proj.extra"));  // whole components only
}

TEST(TensorParallelPlan, Qwen3LayerStyles) {
  const ModelFamily& f = model_family("qwen3");
  ASSERT_NE(std::find(f.tp_archs.begin(), f.tp_archs.end(), "qwen3"), f.tp_archs.end());
  EXPECT_EQ(tp_style(f.tp_plan, "model.layers.1.self_attn.q_proj"), TpStyle::kColumn);
  EXPECT_EQ(tp_style(f.tp_plan, "model.layers.1.self_attn.o_proj"), TpStyle::kRow);
  // Qwen3's per-head q/k norms see only this rank's heads.
  EXPECT_EQ(tp_style(f.tp_plan, "model.layers.1.self_attn.q_norm"), TpStyle::kPartialGrad);
  EXPECT_EQ(tp_style(f.tp_plan, "model.layers.1.self_attn.k_norm"), TpStyle::kPartialGrad);
  // Mixtral's experts and gpt2 have no plan.
  EXPECT_EQ(std::find(f.tp_archs.begin(), f.tp_archs.end(), "mixtral"), f.tp_archs.end());
  EXPECT_TRUE(model_family("gpt2").tp_plan.empty());
  EXPECT_TRUE(model_family("gpt2").tp_archs.empty());
}

}  // namespace
}  // namespace reef
