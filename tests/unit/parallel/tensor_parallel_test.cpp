// Tests for parallel/tensor_parallel.h with tp ranks as threads of this process (TCPStore +
// Gloo on loopback): a sharded llama (GQA, biases; and a tied-embedding Qwen3 with q/k norms)
// gives the full model's logits slice, loss and gradients, with sequence parallelism too (and
// packed rows); the sequence-parallel operators and their gradients; checkpoints gather / shard
// round trip; the mesh's dp x tp subgroups reduce over the right ranks; unsplittable models are one
// usage error naming the key.
#include "reef/parallel/tensor_parallel.h"

#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "model_copies.h"
#include "reef/base/error.h"
#include "reef/models/llama/llama.h"
#include "reef/nn/packing.h"
#include "run_ranks.h"

namespace reef {
namespace {

using testing::copy_model;
using testing::random_model;
using testing::run_ranks;

ModelConfig llama_gqa() {
  ModelConfig c;
  c.arch = "llama";
  c.hidden_size = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.intermediate_size = 48;
  c.vocab_size = 40;
  c.max_seq_len = 16;
  c.attention_bias = true;  // column biases split, o_proj's added once
  c.mlp_bias = true;
  return c;
}

ModelConfig qwen3_tied() {
  ModelConfig c;
  c.arch = "qwen3";  // per-head q/k norms: partial gradients completed over the group
  c.hidden_size = 32;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.head_dim = 16;
  c.intermediate_size = 48;
  c.vocab_size = 40;
  c.max_seq_len = 16;
  c.tie_embeddings = true;
  return c;
}

constexpr double kAtol = 1e-5;  // expect_close's absolute tolerance

// (model, sequence parallel)
class ShardedModel : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(ShardedModel, GivesTheFullModelsLogitsLossAndGradients) {
  const auto& [name, sequence_parallel] = GetParam();
  const ModelConfig cfg = name == "llama_gqa" ? llama_gqa() : qwen3_tied();
  CausalLM full = random_model(cfg);
  torch::manual_seed(3);
  const int64_t T = sequence_parallel ? 10 : 9;  // sequence parallel: an even split
  auto ids = torch::randint(0, cfg.vocab_size, {2, T}, torch::kLong);
  auto targets = torch::randint(0, cfg.vocab_size, {2, T}, torch::kLong);
  targets[0][2] = -100;  // ignored, as torch's cross_entropy
  targets[1][5] = -100;
  auto logits = full->forward(ids);  // [B, T, V]
  auto loss = causal_lm_loss(full->config(), logits, targets);
  loss.backward();
  std::vector<CausalLM> ranks = {copy_model(cfg, full), copy_model(cfg, full)};

  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    CausalLM m = ranks[pg->rank()];
    TensorParallel tp(m, pg, sequence_parallel);
    const int64_t vl = cfg.vocab_size / 2;
    EXPECT_EQ(m->body().tokens()->weight.size(0), vl);
    EXPECT_EQ(
        m->body().layer_module(0)->as<LlamaDecoderLayerImpl>()->self_attn->k_proj->weight.size(0),
        cfg.n_kv_heads / 2 * m->config().head_dim);
    if (sequence_parallel) {  // between the layers each rank holds half of the sequence
      EXPECT_EQ(m->embed(ids).sizes(), (std::vector<int64_t>{2, T / 2, cfg.hidden_size}));
      EXPECT_EQ(m->run_layers(m->embed(ids), 0, 1, T).sizes(),
                (std::vector<int64_t>{2, T / 2, cfg.hidden_size}));
    }
    auto local = m->forward(ids);  // [B, T, V/2]
    testing::expect_close(local.detach(), logits.detach().narrow(2, pg->rank() * vl, vl),
                          "logits slice", kAtol);
    auto l = tp.loss(local, targets);
    EXPECT_NEAR(l.item<double>(), loss.item<double>(), 1e-5 * loss.item<double>());
    l.backward();
    tp.reduce_partial_gradients();
    auto want = full->named_parameters();
    for (const auto& item : m->named_parameters()) {
      ASSERT_TRUE(item.value().grad().defined()) << item.key();
      auto g = tp.gather(item.key(), item.value().grad());
      testing::expect_close(g, want[item.key()].grad(), "gradient of " + item.key(), kAtol);
    }
    // The checkpoint view: the gathered model is the full one; norm of all gradients too.
    CausalLM back = tp.gather_model();
    for (const auto& item : back->named_parameters())
      EXPECT_TRUE(torch::equal(item.value(), want[item.key()])) << item.key();
    std::vector<torch::Tensor> norms;
    for (auto& p : full->parameters()) norms.push_back(p.grad().norm());
    EXPECT_NEAR(tp.clip_grad_norm(0), torch::stack(norms).norm().item<double>(), 1e-5);
  });
}

INSTANTIATE_TEST_SUITE_P(TensorParallel, ShardedModel,
                         ::testing::Combine(::testing::Values("llama_gqa", "qwen3_tied"),
                                            ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) +
                                  (std::get<1>(info.param) ? "_sequence_parallel" : "");
                         });

// The sequence-parallel operators against their definitions: gather_sequence concatenates the
// ranks' slices along dim 1 and its gradient is the sum over ranks of the output gradients,
// sliced; reduce_scatter_sequence is the sum over ranks, sliced, and its gradient the gathered
// output gradients.
TEST(SequenceParallel, GatherAndReduceScatterAlongTheSequenceAndTheirGradients) {
  auto input = [](int rank) {
    return torch::arange(24, torch::kFloat).view({2, 3, 4}) * (rank + 1);
  };
  auto out_grad = [](int rank) {
    return torch::full({2, 6, 4}, 1.0f + rank) + torch::arange(4, torch::kFloat);
  };
  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    const int r = pg->rank();
    auto x = input(r).requires_grad_(true);  // [B, T/2, C]
    auto y = gather_sequence(x, *pg);        // [B, T, C]
    EXPECT_TRUE(torch::equal(y, torch::cat({input(0), input(1)}, 1)));
    y.backward(out_grad(r));
    EXPECT_TRUE(torch::equal(x.grad(), (out_grad(0) + out_grad(1)).narrow(1, 3 * r, 3)));

    auto z = torch::arange(48, torch::kFloat).view({2, 6, 4}).mul(r + 1).requires_grad_(true);
    auto s = reduce_scatter_sequence(z, *pg);  // [B, T/2, C]
    EXPECT_TRUE(torch::equal(
        s, (torch::arange(48, torch::kFloat).view({2, 6, 4}) * 3).narrow(1, 3 * r, 3)));
    auto g = torch::full({2, 3, 4}, 10.0f * (r + 1));
    s.backward(g);
    EXPECT_TRUE(torch::equal(
        z.grad(), torch::cat({torch::full({2, 3, 4}, 10.0f), torch::full({2, 3, 4}, 20.0f)}, 1)));
    // An uneven split is an error naming the key to change.
    try {
      reduce_scatter_sequence(torch::zeros({1, 5, 2}), *pg);
      ADD_FAILURE() << "no error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("make data.seq_len divisible by parallel.tp"),
                std::string::npos)
          << e.what();
    }
  });
}

// Packed rows (positions restarting per sample, attention within each sample) under sequence
// parallelism: the positions span the whole sequence, not a rank's slice.
TEST(SequenceParallel, PackedSequencesGiveTheFullModelsLogits) {
  const ModelConfig cfg = llama_gqa();
  CausalLM full = random_model(cfg);
  auto ids = torch::randint(0, cfg.vocab_size, {2, 8}, torch::kLong);
  auto pos =
      torch::tensor({0, 1, 2, 0, 1, 2, 3, 4, 0, 1, 2, 3, 4, 5, 0, 1}, torch::kLong).view({2, 8});
  auto seg =
      torch::tensor({0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 1, 1}, torch::kLong).view({2, 8});
  PackedSequences packed(pos, seg);
  auto logits = full->forward_train(ids, &packed).logits.detach();
  std::vector<CausalLM> ranks = {copy_model(cfg, full), copy_model(cfg, full)};
  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    CausalLM m = ranks[pg->rank()];
    TensorParallel tp(m, pg, /*sequence_parallel=*/true);
    PackedSequences mine(pos, seg);
    auto local = m->forward_train(ids, &mine).logits.detach();
    testing::expect_close(local,
                          logits.narrow(2, pg->rank() * cfg.vocab_size / 2, cfg.vocab_size / 2),
                          "packed logits slice", kAtol);
  });
}

TEST(TensorParallel, LoadsFullWeightsAndOptimizerStateAsSlices) {
  const ModelConfig cfg = llama_gqa();
  CausalLM full = random_model(cfg);
  std::vector<CausalLM> ranks = {copy_model(cfg, full), copy_model(cfg, full)};
  torch::manual_seed(11);
  CausalLM other(cfg);  // different weights, to load
  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    CausalLM m = ranks[pg->rank()];
    TensorParallel tp(m, pg);
    tp.load_full_model(other);
    CausalLM back = tp.gather_model();
    auto want = other->named_parameters();
    for (const auto& item : back->named_parameters())
      EXPECT_TRUE(torch::equal(item.value(), want[item.key()])) << item.key();
    std::map<std::string, torch::Tensor> state;
    for (const auto& item : other->named_parameters())
      state[item.key() + ".exp_avg"] = item.value() * 2;
    auto mine = tp.shard_state(state);
    const std::string o = "model.layers.1.self_attn.o_proj.weight";
    EXPECT_TRUE(torch::equal(mine[o + ".exp_avg"], want[o].narrow(1, pg->rank() * 16, 16) * 2));
    std::vector<std::pair<std::string, torch::Tensor>> local(mine.begin(), mine.end());
    for (const auto& [name, t] : tp.gather_state(local))
      EXPECT_TRUE(torch::equal(t, state[name])) << name;
  });
}

TEST(TensorParallel, MeshSubgroupsReduceOverTheirRanks) {
  Mesh mesh;
  mesh.dp = 2;
  mesh.tp = 2;
  EXPECT_EQ(tp_group_ranks(mesh, 3), (std::vector<int>{2, 3}));
  EXPECT_EQ(dp_group_ranks(mesh, 3), (std::vector<int>{1, 3}));
  EXPECT_EQ(dp_rank_of(mesh, 2), 1);
  EXPECT_EQ(tp_rank_of(mesh, 2), 0);
  run_ranks(4, [&](std::shared_ptr<ProcessGroup> pg) {
    MeshGroups g = make_mesh_groups(mesh, pg);
    ASSERT_TRUE(g.dp && g.tp);
    EXPECT_EQ(g.tp->size(), 2);
    EXPECT_EQ(g.tp->rank(), pg->rank() % 2);
    EXPECT_EQ(g.dp->rank(), pg->rank() / 2);
    auto t = torch::full({3}, static_cast<double>(1 << pg->rank()));
    g.tp->all_reduce_sum(t);  // ranks {0,1}: 1+2, {2,3}: 4+8
    EXPECT_EQ(t[0].item<double>(), pg->rank() < 2 ? 3.0 : 12.0);
    auto u = torch::full({3}, static_cast<double>(1 << pg->rank()));
    g.dp->all_reduce_sum(u);  // ranks {0,2}: 1+4, {1,3}: 2+8
    EXPECT_EQ(u[0].item<double>(), pg->rank() % 2 == 0 ? 5.0 : 10.0);
  });
}

std::string usage_message(const ModelConfig& cfg, int64_t tp) {
  try {
    check_tensor_parallel(resolve_model_config(cfg), tp);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  return "";
}

TEST(TensorParallel, UnsplittableModelsAreUsageErrorsNamingTheKey) {
  ModelConfig c = llama_gqa();
  EXPECT_EQ(usage_message(c, 2), "");
  EXPECT_NE(usage_message(c, 4).find("model.n_kv_heads=2 is not divisible"), std::string::npos)
      << usage_message(c, 4);
  c.n_heads = 6;
  c.n_kv_heads = 3;
  c.head_dim = 8;
  EXPECT_NE(usage_message(c, 4).find("model.n_heads=6 is not divisible"), std::string::npos);
  c = llama_gqa();
  c.vocab_size = 41;
  EXPECT_NE(usage_message(c, 2).find("model.vocab_size=41 is not divisible by it"),
            std::string::npos);
  EXPECT_NE(usage_message(c, 2).find("set model.vocab_size=42"), std::string::npos)
      << usage_message(c, 2);
  c = llama_gqa();
  c.n_kv_heads = 4;
  c.intermediate_size = 50;
  EXPECT_NE(usage_message(c, 4).find("model.intermediate_size=50 is not divisible"),
            std::string::npos)
      << usage_message(c, 4);
  c = llama_gqa();
  c.arch = "gpt2";
  c.n_kv_heads = 4;
  EXPECT_NE(usage_message(c, 2).find("not model.arch gpt2"), std::string::npos)
      << usage_message(c, 2);
}

}  // namespace
}  // namespace reef
