// Tests for parallel/fsdp.h with dp ranks as threads of this process (TCPStore + Gloo on
// loopback): at rest a rank holds about 1/dp of the parameters and no full parameter storage;
// the gathered forward gives the full model's logits; each layer is reduce-scattered and released
// during backward; the reduce-scatters leave each rank the slice of the gradient averaged over
// the ranks' different batches; the gathered weights after a reshard are the ones loaded.
#include "reef/parallel/fsdp.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "model_copies.h"
#include "reef/base/error.h"
#include "run_ranks.h"

namespace reef {
namespace {

using testing::copy_model;

// Runs `probe(layer)` right before the decoder layer it wraps (same children, same names).
class ProbeLayerImpl : public DecoderLayerWrapperImpl {
 public:
  ProbeLayerImpl(std::shared_ptr<torch::nn::Module> inner, std::function<void(int64_t)> probe)
      : DecoderLayerWrapperImpl(std::move(inner)), probe_(std::move(probe)) {}
  torch::Tensor forward(const torch::Tensor& x, const LayerContext& ctx, int64_t layer) override {
    probe_(layer);
    return inner().forward(x, ctx, layer);
  }

 private:
  std::function<void(int64_t)> probe_;
};
using testing::random_model;
using testing::run_ranks;

ModelConfig llama_gqa() {
  ModelConfig c;
  c.arch = "llama";
  c.hidden_size = 32;
  c.n_layers = 3;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.intermediate_size = 48;
  c.vocab_size = 41;  // odd sizes: padded slices
  c.max_seq_len = 16;
  c.attention_bias = true;
  return c;
}

ModelConfig gpt2_tied() {
  ModelConfig c;
  c.arch = "gpt2";
  c.hidden_size = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.vocab_size = 37;
  c.max_seq_len = 16;
  c.tie_embeddings = true;
  return c;
}

constexpr double kAtol = 1e-6;  // expect_close's absolute tolerance

bool decays(const std::string&, const torch::Tensor& p) { return p.dim() >= 2; }

class FsdpModel : public ::testing::TestWithParam<std::string> {};

TEST_P(FsdpModel, HoldsASliceAtRestAndGivesTheFullModelsLogitsAndAveragedGradients) {
  const ModelConfig cfg = GetParam() == "llama_gqa" ? llama_gqa() : gpt2_tied();
  CausalLM full = random_model(cfg);
  torch::manual_seed(3);
  // Each rank trains on its own batch; the reference sees both and averages.
  std::vector<torch::Tensor> ids, targets;
  for (int r = 0; r < 2; ++r) {
    ids.push_back(torch::randint(0, cfg.vocab_size, {2, 9}, torch::kLong));
    targets.push_back(torch::randint(0, cfg.vocab_size, {2, 9}, torch::kLong));
  }
  std::vector<torch::Tensor> want_logits;
  torch::Tensor ref_loss;
  for (int r = 0; r < 2; ++r) {
    want_logits.push_back(full->forward(ids[r]).detach());
    auto l = causal_lm_loss_sum(full->forward(ids[r]), targets[r]) * 0.5;
    ref_loss = ref_loss.defined() ? ref_loss + l : l;
  }
  ref_loss.backward();
  const int64_t total = [&] {
    int64_t n = 0;
    for (auto& p : full->parameters()) n += p.numel();
    return n;
  }();
  std::vector<CausalLM> ranks = {copy_model(cfg, full), copy_model(cfg, full)};

  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    const int r = pg->rank();
    CausalLM m = ranks[r];
    // A probe inside each layer (FSDP wraps the probes): while layer i runs forward, layer i + 1's
    // all-gather is in flight or done (prefetch), and no other decoder layer holds its
    // parameters.
    Fsdp* probed = nullptr;
    int64_t prefetched = 0, most_held = 0;
    auto probe = [&](int64_t i) {
      if (probed == nullptr) return;
      auto held = [&](int64_t j) {
        return probed->units()[j].gathered || probed->units()[j].gathering != nullptr;
      };
      int64_t n = 0;
      for (int64_t j = 0; j < cfg.n_layers; ++j) n += held(j) ? 1 : 0;
      most_held = std::max(most_held, n);
      if (i + 1 < cfg.n_layers && held(i + 1)) ++prefetched;
    };
    for (int64_t i = 0; i < cfg.n_layers; ++i)
      m->body().replace_layer(i,
                              std::make_shared<ProbeLayerImpl>(m->body().layer_module(i), probe));
    Fsdp fsdp(m, pg, decays);
    EXPECT_EQ(fsdp.total_elements(), total);
    EXPECT_EQ(fsdp.units().size(), static_cast<size_t>(cfg.n_layers) + 1);
    // At rest: the slices (1/dp, up to one padding element per unit) and no parameter storage.
    EXPECT_GE(fsdp.local_elements() * 2, total);
    EXPECT_LE(fsdp.local_elements() * 2, total + 2 * static_cast<int64_t>(fsdp.units().size()));
    auto resident = [&] {
      int64_t bytes = 0;
      for (auto& p : m->parameters()) bytes += static_cast<int64_t>(p.storage().nbytes());
      return bytes;
    };
    EXPECT_EQ(resident(), 0);

    fsdp.gather_root();
    probed = &fsdp;
    auto logits = m->forward(ids[r]);
    probed = nullptr;
    testing::expect_close(logits.detach(), want_logits[r], "logits", kAtol);
    EXPECT_EQ(prefetched, cfg.n_layers - 1);
    EXPECT_EQ(most_held, std::min<int64_t>(2, cfg.n_layers));
    const int64_t calls_before = pg->bytes().reduce_scatter_calls;
    (causal_lm_loss_sum(logits, targets[r])).backward();
    // During backward each decoder layer's reduce-scatter was started and the layer released as
    // soon as its gradients were complete; only the root unit waits for after_backward(), which
    // also waits for the last reduce-scatter in flight.
    EXPECT_EQ(pg->bytes().reduce_scatter_calls - calls_before, cfg.n_layers);
    for (int64_t i = 0; i < cfg.n_layers; ++i)
      EXPECT_FALSE(fsdp.units()[i].gathered) << "layer " << i;
    EXPECT_TRUE(fsdp.units().back().gathered);
    fsdp.after_backward();
    EXPECT_EQ(pg->bytes().reduce_scatter_calls - calls_before, cfg.n_layers + 1);
    EXPECT_EQ(resident(), 0) << "full parameters are released after backward";
    auto want = full->named_parameters();
    for (const auto& u : fsdp.units()) {
      ASSERT_TRUE(u.grad.defined()) << u.name;
      for (const auto& rg : fsdp.local_ranges(u)) {
        auto w = want[rg.param->name].grad().reshape({-1}).narrow(0, rg.begin, rg.length);
        testing::expect_close(u.grad.narrow(0, rg.at, rg.length), w,
                              "gradient slice of " + rg.param->name, kAtol);
        EXPECT_FALSE(rg.param->tensor.grad().defined())
            << "full gradient freed: " << rg.param->name;
      }
    }
    // The forward without grad (validation) gathers and releases too.
    {
      torch::NoGradGuard ng;
      fsdp.gather_root();
      testing::expect_close(m->forward(ids[r]), want_logits[r], "no-grad logits", kAtol);
      fsdp.release_all();
      EXPECT_EQ(resident(), 0);
    }
    // Whole weights written into the gathered model become the new slices.
    fsdp.gather_all();
    {
      torch::NoGradGuard ng;
      for (auto& p : m->parameters()) p.fill_(0.25);
    }
    fsdp.reshard_from_params();
    EXPECT_EQ(resident(), 0);
    for (const auto& u : fsdp.units())
      for (const auto& rg : fsdp.local_ranges(u))
        EXPECT_TRUE(torch::all(u.local.narrow(0, rg.at, rg.length) == 0.25).item<bool>())
            << rg.param->name;
    // Global gradient norm from the slices equals the reference's.
    std::vector<torch::Tensor> norms;
    for (auto& p : full->parameters()) norms.push_back(p.grad().norm());
    EXPECT_NEAR(fsdp.clip_grad_norm(0), torch::stack(norms).norm().item<double>(), 1e-4);
  });
}

INSTANTIATE_TEST_SUITE_P(Fsdp, FsdpModel, ::testing::Values("llama_gqa", "gpt2_tied"));

TEST(Fsdp, ReduceScatterSumsEachRanksChunk) {
  run_ranks(2, [](std::shared_ptr<ProcessGroup> pg) {
    auto in = torch::arange(6, torch::kFloat) + 10 * pg->rank();  // rank 1: 10..15
    auto out = torch::empty({3});
    pg->reduce_scatter_sum(out, in);
    auto want =
        pg->rank() == 0 ? torch::tensor({10.f, 12.f, 14.f}) : torch::tensor({16.f, 18.f, 20.f});
    EXPECT_TRUE(torch::equal(out, want)) << out;
    EXPECT_EQ(pg->bytes().reduce_scatter, 24);
    EXPECT_EQ(pg->bytes().reduce_scatter_calls, 1);
  });
}

}  // namespace
}  // namespace reef
