// CausalLM's pipeline pieces (embed, run_layers over consecutive ranges, head) equal forward()
// exactly for every architecture family, and keep_only releases what a stage does not run
// while the kept parameters keep their full-model names.
#include <gtest/gtest.h>

#include <set>

#include "reef/models/causal_lm.h"

namespace reef {
namespace {

ModelConfig small(const std::string& arch, bool tied) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 50;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = arch == "gpt2" ? 0 : 2;
  c.max_seq_len = 32;
  c.activation = "auto";
  c.tie_embeddings = tied;
  return c;
}

std::set<std::string> names(const CausalLM& m) {
  std::set<std::string> out;
  for (const auto& p : m->named_parameters()) out.insert(p.key());
  return out;
}

TEST(PipelinePieces, StagesComposeToForwardExactly) {
  for (const auto& [arch, tied] : std::vector<std::pair<std::string, bool>>{{"llama", false},
                                                                            {"gpt2", true},
                                                                            {"gemma", true},
                                                                            {"qwen3", true},
                                                                            {"mixtral", false}}) {
    SCOPED_TRACE(arch);
    torch::manual_seed(3);
    CausalLM m(small(arch, tied));
    auto ids = torch::randint(0, 50, {2, 7}, torch::kLong);
    torch::NoGradGuard ng;
    auto want = m->forward(ids);
    auto h = m->embed(ids);
    h = m->run_layers(h, 0, 2, 7);
    h = m->run_layers(h, 2, 3, 7);
    EXPECT_TRUE(torch::equal(m->head(h), want));
  }
}

TEST(PipelinePieces, KeepOnlyReleasesOtherStagesAndKeepsNames) {
  torch::manual_seed(3);
  CausalLM first(small("llama", false)), middle(small("llama", false)), last(small("llama", false));
  const auto all = names(first);
  first->keep_only(0, 1, /*keep_embeddings=*/true, /*keep_head=*/false);
  middle->keep_only(1, 2, false, false);
  last->keep_only(2, 3, false, true);
  // Every parameter lives on exactly one stage, under its full-model name.
  std::set<std::string> seen;
  for (const CausalLM* m : {&first, &middle, &last})
    for (const auto& n : names(*m)) EXPECT_TRUE(seen.insert(n).second) << n << " on two stages";
  EXPECT_EQ(seen, all);
  EXPECT_TRUE(names(first).count("model.embed_tokens.weight"));
  EXPECT_TRUE(names(middle).count("model.layers.1.mlp.up_proj.weight"));
  EXPECT_FALSE(names(middle).count("model.layers.0.mlp.up_proj.weight"));
  EXPECT_TRUE(names(last).count("lm_head.weight"));
  EXPECT_TRUE(names(last).count("model.norm.weight"));

  // Tied: the last stage keeps the token embedding as its head's matrix.
  CausalLM tied_last(small("gpt2", true));
  tied_last->keep_only(2, 3, false, true);
  const auto kept = names(tied_last);
  EXPECT_TRUE(kept.count("transformer.wte.weight"));
  EXPECT_FALSE(kept.count("transformer.wpe.weight"));
  EXPECT_FALSE(kept.count("transformer.h.0.attn.c_attn.weight"));
  auto h = torch::randn({1, 4, 16});
  EXPECT_EQ(tied_last->head(tied_last->run_layers(h, 2, 3, 4)).sizes(),
            (std::vector<int64_t>{1, 4, 50}));
}

}  // namespace
}  // namespace reef
