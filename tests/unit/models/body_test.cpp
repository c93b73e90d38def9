// The decoder body interface (models/body.h) that parallel layouts reshape from outside: module
// surgery (a replaced token lookup, a wrapper around a layer) keeps every parameter's name and
// the model's output, for every family; the per-family accounting equals the built model; the
// norms initialise themselves (gemma's (1 + weight) norms at zero).
#include "reef/models/body.h"

#include <gtest/gtest.h>

#include <set>

#include "reef/models/causal_lm.h"
#include "tiny_model.h"

namespace reef {
namespace {

std::vector<std::string> names(CausalLM& m) {
  std::vector<std::string> out;
  for (const auto& p : m->named_parameters()) out.push_back(p.key());
  return out;
}

// Counts calls, then runs the layer it wraps.
class CountingLayerImpl : public DecoderLayerWrapperImpl {
 public:
  CountingLayerImpl(std::shared_ptr<torch::nn::Module> inner, int* calls)
      : DecoderLayerWrapperImpl(std::move(inner)), calls_(calls) {}
  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) override {
    ++*calls_;
    return inner().forward(x, ctx, layer);
  }

 private:
  int* calls_;
};

// A lookup that doubles the plain one, over the same weight.
class DoublingEmbeddingImpl : public EmbeddingImpl {
 public:
  explicit DoublingEmbeddingImpl(torch::Tensor w) : EmbeddingImpl(std::move(w)) {}
  torch::Tensor forward(const torch::Tensor& ids) override {
    return 2 * EmbeddingImpl::forward(ids);
  }
};

TEST(DecoderBody, ModuleSurgeryKeepsNamesAndOutputsForEveryFamily) {
  for (const std::string arch : {"llama", "gemma", "mixtral", "gpt2"}) {
    SCOPED_TRACE(arch);
    torch::manual_seed(5);
    CausalLM m(testing::tiny_model(arch, 50));
    auto ids = torch::randint(0, 50, {2, 6}, torch::kLong);
    torch::NoGradGuard ng;
    const auto want = m->forward(ids);
    const auto before = names(m);
    int calls = 0;
    for (int64_t i = 0; i < m->body().n_layers(); ++i)
      m->body().replace_layer(
          i, std::make_shared<CountingLayerImpl>(m->body().layer_module(i), &calls));
    EXPECT_EQ(names(m), before);
    EXPECT_TRUE(torch::equal(m->forward(ids), want));
    EXPECT_EQ(calls, 2);

    // The body calls whatever lookup sits in its place: the parameter stays the same tensor
    // under the same name, and the output changes as the new lookup says.
    const auto weight = m->body().tokens()->weight;
    std::shared_ptr<EmbeddingImpl> doubled = std::make_shared<DoublingEmbeddingImpl>(weight);
    m->body().replace_tokens(Embedding(doubled));
    EXPECT_EQ(names(m), before);
    EXPECT_TRUE(m->body().tokens()->weight.is_same(weight));
    EXPECT_TRUE(torch::equal(m->embed_tokens(ids), 2 * torch::embedding(weight, ids)));
    EXPECT_FALSE(torch::equal(m->forward(ids), want));
    EXPECT_EQ(m->token_embedding_name(),
              arch == "gpt2" ? "transformer.wte.weight" : "model.embed_tokens.weight");
  }
}

TEST(DecoderBody, FamilyAccountingEqualsTheBuiltModel) {
  for (const std::string arch : {"llama", "qwen2", "qwen3", "gemma", "mixtral", "gpt2"}) {
    SCOPED_TRACE(arch);
    auto c = testing::tiny_model(arch, 50);
    CausalLM m(c);
    int64_t n = 0;
    for (const auto& p : m->parameters()) n += p.numel();
    EXPECT_EQ(count_parameters(c), n);
    int64_t embeddings = 0;
    for (const auto& w : m->body().embedding_weights()) embeddings += w.numel();
    EXPECT_EQ(count_parameters(c, /*include_embeddings=*/false), n - embeddings);
  }
}

TEST(DecoderBody, NormsInitialiseThemselves) {
  for (const std::string arch : {"llama", "gemma", "gpt2"}) {
    SCOPED_TRACE(arch);
    auto c = testing::tiny_model(arch, 50);
    c.init_std = 0.5;
    CausalLM m(c);
    const double want = arch == "gemma" ? 0.0 : 1.0;  // gemma scales by (1 + weight)
    int norms = 0;
    for (const auto& p : m->named_parameters()) {
      const auto& name = p.key();
      const bool norm_weight = (name.find("norm.weight") != std::string::npos ||
                                name.find("ln_") != std::string::npos) &&
                               name.find(".bias") == std::string::npos;
      if (!norm_weight) continue;
      ++norms;
      EXPECT_TRUE(torch::equal(p.value(), torch::full_like(p.value(), want))) << name;
    }
    EXPECT_EQ(norms, 2 * c.n_layers + 1);
  }
}

}  // namespace
}  // namespace reef
