// Tests for parallel/strategy.h: the vocabulary-wide reductions a loss reads (per-token
// cross-entropy and log-sum-exp) give the full model's values and gradients from tensor-parallel
// vocab slices (tp ranks as threads, Gloo on loopback), and one process's strategy runs a step's
// micro-batches with a given loss to the same gradients as the model by hand, also when the LM
// head runs at the loss's positions only (MicroBatch::head_positions).
#include "reef/parallel/strategy.h"

#include <gtest/gtest.h>

#include "model_copies.h"
#include "reef/parallel/tensor_parallel.h"
#include "run_ranks.h"

namespace reef {
namespace {

TEST(ModelOutputs, VocabReductionsFromTensorParallelSlicesEqualTheFullModels) {
  const ModelConfig cfg = testing::tiny_llama_config();
  CausalLM full = testing::random_model(cfg);
  torch::manual_seed(5);
  auto ids = torch::randint(0, cfg.vocab_size, {2, 7}, torch::kLong);
  auto targets = torch::randint(0, cfg.vocab_size, {2, 7}, torch::kLong);
  targets[1][3] = kIgnoreTarget;
  ModelOutputs whole;
  whole.logits = full->forward(ids);
  auto want_ce = whole.token_cross_entropy(targets);
  EXPECT_EQ(want_ce[1][3].item<double>(), 0.0);
  EXPECT_NEAR(want_ce.sum().item<double>(), whole.cross_entropy_sum(targets).item<double>(), 1e-4);
  auto want_lse = whole.token_logsumexp();
  testing::expect_close(want_lse, torch::logsumexp(whole.logits.detach(), -1), "lse", 1e-6);
  (want_lse.pow(2).sum() + want_ce.sum()).backward();
  std::vector<CausalLM> ranks = {testing::copy_model(cfg, full), testing::copy_model(cfg, full)};

  testing::run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    CausalLM m = ranks[pg->rank()];
    TensorParallel tp(m, pg);
    ModelOutputs out;
    out.logits = m->forward(ids);  // [B, T, V/2]
    out.tp = &tp;
    ASSERT_EQ(out.logits.size(2), cfg.vocab_size / 2);
    auto ce = out.token_cross_entropy(targets);
    auto lse = out.token_logsumexp();
    testing::expect_close(ce.detach(), want_ce.detach(), "token cross-entropy", 1e-5);
    testing::expect_close(lse.detach(), want_lse.detach(), "token logsumexp", 1e-5);
    (lse.pow(2).sum() + ce.sum()).backward();
    tp.reduce_partial_gradients();
    auto want = full->named_parameters();
    for (const auto& item : m->named_parameters())
      testing::expect_close(tp.gather(item.key(), item.value().grad()), want[item.key()].grad(),
                            "gradient of " + item.key(), 1e-5);
  });
}

TEST(Parallelize, OneProcessRunsTheMicroBatchesWithTheGivenLoss) {
  Config cfg;
  cfg.model = testing::tiny_llama_config();
  cfg.train.micro_batch_size = 2;
  cfg.train.grad_accum = 3;
  CausalLM ref = testing::random_model(cfg.model);
  CausalLM m = testing::copy_model(cfg.model, ref);
  auto strategy = parallelize(m, cfg, nullptr);
  EXPECT_EQ(strategy->describe(), "dp=1 tp=1 pp=1 zero=0");
  EXPECT_EQ(strategy->shard().accum_steps, 3);
  EXPECT_TRUE(strategy->flat_pieces().empty());
  EXPECT_EQ(strategy->sharded_params().size(), m->named_parameters().size());
  torch::manual_seed(1);
  auto ids = torch::randint(0, cfg.model.vocab_size, {3, 2, 6}, torch::kLong);
  std::vector<int64_t> seen;
  strategy->forward_backward(
      3, 6, [&](int64_t k) { return MicroBatch{ids[k]}; },
      [&](const ModelOutputs& out, int64_t k) {
        seen.push_back(k);
        return out.token_logsumexp().mean() * 0.5;
      });
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 1, 2}));
  for (int64_t k = 0; k < 3; ++k)
    (torch::logsumexp(ref->forward(ids[k]), -1).mean() * 0.5).backward();
  std::vector<torch::Tensor> norms;
  auto want = ref->named_parameters();
  for (const auto& item : m->named_parameters()) {
    testing::expect_close(item.value().grad(), want[item.key()].grad(), item.key(), 1e-5);
    norms.push_back(want[item.key()].grad().norm());
  }
  EXPECT_NEAR(strategy->finish_gradients(0), torch::stack(norms).norm().item<double>(), 1e-4);
}

// A micro-batch that marks its counted targets gets logits for those positions only ([N, V]),
// and every reduction a loss reads, with its gradients, equals the whole [B, T, V] logits'.
TEST(Parallelize, HeadAtTheCountedTargetsOnlyGivesTheSameLossAndGradients) {
  Config cfg;
  cfg.model = testing::tiny_llama_config();
  cfg.train.micro_batch_size = 2;
  CausalLM ref = testing::random_model(cfg.model);
  CausalLM m = testing::copy_model(cfg.model, ref);
  auto strategy = parallelize(m, cfg, nullptr);
  torch::manual_seed(2);
  auto ids = torch::randint(0, cfg.model.vocab_size, {2, 7}, torch::kLong);
  auto targets = torch::randint(0, cfg.model.vocab_size, {2, 7}, torch::kLong);
  targets.narrow(1, 0, 3).fill_(kIgnoreTarget);  // prompts
  targets[1][6] = kIgnoreTarget;                 // padding
  const int64_t counted = (targets != kIgnoreTarget).sum().item<int64_t>();
  MicroBatch b{ids};
  b.head_positions = targets != kIgnoreTarget;
  double got_sum = 0;
  strategy->forward_backward(
      1, 7, [&](int64_t) { return b; },
      [&](const ModelOutputs& out, int64_t) {
        EXPECT_TRUE(out.positions.defined());
        EXPECT_EQ(out.logits.sizes(), (std::vector<int64_t>{counted, cfg.model.vocab_size}));
        auto ce = out.token_cross_entropy(targets);  // [B, T], 0 where not counted
        EXPECT_EQ(ce.sizes(), targets.sizes());
        EXPECT_EQ(ce[0][0].item<double>(), 0.0);
        EXPECT_NEAR(ce.sum().item<double>(), out.cross_entropy_sum(targets).item<double>(), 1e-4);
        got_sum = ce.sum().item<double>();
        auto lse = out.token_logsumexp();
        EXPECT_EQ(lse[1][6].item<double>(), 0.0);
        return ce.sum() + 0.1 * lse.pow(2).sum();
      });
  ModelOutputs whole;
  whole.logits = ref->forward(ids);
  auto ce = whole.token_cross_entropy(targets);
  auto lse = whole.token_logsumexp() * (targets != kIgnoreTarget).to(torch::kFloat);
  EXPECT_NEAR(got_sum, ce.sum().item<double>(), 1e-4);
  (ce.sum() + 0.1 * lse.pow(2).sum()).backward();
  auto want = ref->named_parameters();
  for (const auto& item : m->named_parameters())
    testing::expect_close(item.value().grad(), want[item.key()].grad(), item.key(), 1e-5);
}

}  // namespace
}  // namespace reef
