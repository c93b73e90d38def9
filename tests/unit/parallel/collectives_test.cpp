// Tests for parallel/process_group.h, data_parallel.h and zero.h with two ranks as two threads
// of this process (TCPStore + Gloo on loopback): collectives, bucketed gradient all-reduce
// against the full-batch gradient, ZeRO-1 AdamW against libtorch's AdamW, and a collective
// that times out instead of hanging.
#include <gtest/gtest.h>

#include <functional>
#include <thread>

#include "reef/base/error.h"
#include "reef/parallel/data_parallel.h"
#include "reef/parallel/process_group.h"
#include "reef/parallel/zero.h"
#include "run_ranks.h"

namespace reef {
namespace {

using testing::run_ranks;

TEST(Collectives, AllReduceBroadcastAllGather) {
  run_ranks(2, [](std::shared_ptr<ProcessGroup> pg) {
    const double r = pg->rank();
    auto t = torch::full({5}, r + 1.0);
    pg->all_reduce_sum(t);
    EXPECT_TRUE(torch::equal(t, torch::full({5}, 3.0)));
    auto b = torch::full({3}, r == 0 ? 7.0 : -1.0);
    pg->broadcast(b, 0);
    EXPECT_TRUE(torch::equal(b, torch::full({3}, 7.0)));
    auto out = torch::empty({4});
    pg->all_gather(out, torch::full({2}, r));
    EXPECT_TRUE(torch::equal(out, torch::tensor({0.0f, 0.0f, 1.0f, 1.0f})));
    EXPECT_EQ(pg->bytes().all_reduce, 5 * 4);
    EXPECT_EQ(pg->bytes().all_gather, 2 * 4);
    pg->barrier();
  });
}

// Several all-gathers and reduce-scatters in flight at once (FSDP's prefetch and overlapped
// reduce-scatter), waited for in another order than issued: each lands in its own output.
TEST(Collectives, AsyncAllGathersAndReduceScattersInFlightTogether) {
  run_ranks(2, [](std::shared_ptr<ProcessGroup> pg) {
    const float r = static_cast<float>(pg->rank());
    auto g1 = torch::empty({4}), g2 = torch::empty({6});
    auto s1 = torch::empty({2}), s2 = torch::empty({3});
    auto w1 = pg->all_gather_async(g1, torch::full({2}, r));
    auto w2 = pg->reduce_scatter_sum_async(s1, torch::arange(4, torch::kFloat) * (r + 1));
    auto w3 = pg->all_gather_async(g2, torch::full({3}, 10 + r));
    auto w4 = pg->reduce_scatter_sum_async(s2, torch::ones({6}) * (r + 1));
    w4->wait();
    w2->wait();
    w3->wait();
    w1->wait();
    EXPECT_TRUE(torch::equal(g1, torch::tensor({0.0f, 0.0f, 1.0f, 1.0f})));
    EXPECT_TRUE(torch::equal(g2, torch::tensor({10.0f, 10.0f, 10.0f, 11.0f, 11.0f, 11.0f})));
    // arange(4) * 1 + arange(4) * 2 = [0, 3, 6, 9]; rank r keeps chunk r.
    EXPECT_TRUE(
        torch::equal(s1, r == 0 ? torch::tensor({0.0f, 3.0f}) : torch::tensor({6.0f, 9.0f})));
    EXPECT_TRUE(torch::equal(s2, torch::full({3}, 3.0f)));
    EXPECT_EQ(pg->bytes().reduce_scatter_calls, 2);
  });
}

// A two-layer model and a regression loss on rows [first, first + n) of fixed data.
struct Tiny {
  torch::nn::Sequential net{torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 1)};
  explicit Tiny(uint64_t seed) {
    torch::manual_seed(seed);
    net =
        torch::nn::Sequential(torch::nn::Linear(6, 5), torch::nn::Tanh(), torch::nn::Linear(5, 1));
  }
  static torch::Tensor loss(torch::nn::Sequential& net, int64_t first, int64_t n) {
    auto g = torch::Generator(at::detail::createCPUGenerator(7));
    auto x = torch::randn({8, 6}, g), y = torch::randn({8, 1}, g);
    return torch::mse_loss(net->forward(x.narrow(0, first, n)), y.narrow(0, first, n));
  }
};

TEST(GradientSync, BucketedAllReduceEqualsTheFullBatchGradient) {
  Tiny ref(1);
  Tiny::loss(ref.net, 0, 8).backward();
  std::vector<torch::Tensor> want;
  for (auto& p : ref.net->parameters()) want.push_back(p.grad().clone());

  // Built here: torch's default generator is not for two threads at once.
  std::vector<std::unique_ptr<Tiny>> models;
  models.push_back(std::make_unique<Tiny>(100));
  models.push_back(
      std::make_unique<Tiny>(101));  // other weights: the broadcast makes them rank 0's
  std::vector<torch::Tensor> rank0_weights;
  for (auto& p : models[0]->net->parameters()) rank0_weights.push_back(p.detach().clone());
  EXPECT_FALSE(torch::equal(models[1]->net->parameters()[0], rank0_weights[0]));
  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    Tiny& m = *models[pg->rank()];
    broadcast_module_from_rank0(*m.net, *pg);
    {
      auto a = m.net->parameters();
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(torch::equal(a[i], rank0_weights[i]));
    }
    // The test's own weights: the reference's, so gradients compare.
    {
      torch::NoGradGuard ng;
      auto a = m.net->parameters(), b = ref.net->parameters();
      for (size_t i = 0; i < a.size(); ++i) a[i].copy_(b[i]);
    }
    GradientSync sync(m.net->parameters(), pg, /*bucket_mb=*/60.0 / (1024 * 1024));
    EXPECT_GT(sync.num_buckets(), 1u);
    for (int step = 0; step < 2; ++step) {  // twice: the buckets reset between steps
      for (auto& p : m.net->parameters()) p.mutable_grad() = torch::Tensor();
      // Each rank: 4 rows as 2 accumulated micro-batches of 2; only the last one syncs.
      for (int mb = 0; mb < 2; ++mb) {
        sync.set_sync(mb == 1);
        (Tiny::loss(m.net, pg->rank() * 4 + mb * 2, 2) / 2.0).backward();
      }
      sync.finish();
      auto got = m.net->parameters();
      for (size_t i = 0; i < got.size(); ++i)
        EXPECT_TRUE(torch::allclose(got[i].grad(), want[i], 1e-5, 1e-7))
            << "param " << i << " step " << step;
    }
    EXPECT_EQ(pg->bytes().all_reduce, 2 * sync.bytes_per_step());
  });
}

TEST(ZeroAdamW, StepsEqualUnshardedAdamWAndStateRoundTrips) {
  OptimConfig cfg;
  cfg.lr = 1e-2;
  cfg.weight_decay = 0.1;
  auto make_params = [] {
    torch::manual_seed(3);
    return std::vector<torch::Tensor>{torch::randn({5, 3}).set_requires_grad(true),
                                      torch::randn({7}).set_requires_grad(true)};
  };
  auto grad_at = [](int step, int i, const torch::Tensor& p) {
    return torch::sin(torch::arange(p.numel(), torch::kFloat) * (step + 1) + i).view(p.sizes());
  };
  // Reference: libtorch AdamW, decay on the matrix only.
  auto ref = make_params();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(
      std::vector<torch::Tensor>{ref[0]},
      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.lr)
                                                       .betas({cfg.beta1, cfg.beta2})
                                                       .eps(cfg.eps)
                                                       .weight_decay(0.1)));
  groups.emplace_back(
      std::vector<torch::Tensor>{ref[1]},
      std::make_unique<torch::optim::AdamWOptions>(torch::optim::AdamWOptions(cfg.lr)
                                                       .betas({cfg.beta1, cfg.beta2})
                                                       .eps(cfg.eps)
                                                       .weight_decay(0.0)));
  torch::optim::AdamW adamw(groups, torch::optim::AdamWOptions(cfg.lr));
  for (int s = 0; s < 3; ++s) {
    for (int i = 0; i < 2; ++i) ref[i].mutable_grad() = grad_at(s, i, ref[i]);
    adamw.step();
  }
  auto& st =
      static_cast<torch::optim::AdamWParamState&>(*adamw.state().at(ref[0].unsafeGetTensorImpl()));

  const auto init = make_params();
  run_ranks(2, [&](std::shared_ptr<ProcessGroup> pg) {
    std::vector<torch::Tensor> p;
    for (const auto& t : init) p.push_back(t.detach().clone().set_requires_grad(true));
    auto make = [&] {
      std::vector<ZeroParamGroup> g(2);
      g[0].params = {{"w", p[0]}};
      g[0].weight_decay = 0.1;
      g[1].params = {{"b", p[1]}};
      return std::make_unique<ZeroAdamW>(g, cfg, pg);
    };
    auto zero = make();
    EXPECT_EQ(zero->local_state_elements(), 8 + 4);  // 15 -> 8 per rank, 7 -> 4 per rank
    for (int s = 0; s < 2; ++s) {
      for (int i = 0; i < 2; ++i) p[i].mutable_grad() = grad_at(s, i, p[i]);
      zero->step();
    }
    // Checkpoint round trip into a fresh optimizer, then the third step.
    int64_t step = 0;
    auto state = zero->gather_state(&step);
    EXPECT_EQ(step, 2);
    ASSERT_EQ(state.size(), 4u);
    std::map<std::string, torch::Tensor> full(state.begin(), state.end());
    zero = make();
    zero->load_state(full, step);
    for (int i = 0; i < 2; ++i) p[i].mutable_grad() = grad_at(2, i, p[i]);
    zero->step();
    for (int i = 0; i < 2; ++i) EXPECT_TRUE(torch::allclose(p[i], ref[i], 1e-6, 1e-7)) << i;
    state = zero->gather_state(&step);
    EXPECT_EQ(step, 3);
    EXPECT_EQ(state[0].first, "w.exp_avg");
    EXPECT_TRUE(torch::allclose(state[0].second, st.exp_avg(), 1e-6, 1e-8));
    EXPECT_TRUE(torch::allclose(state[1].second, st.exp_avg_sq(), 1e-6, 1e-10));
  });
}

TEST(Collectives, AMissingPeerTimesOutWithAnError) {
  run_ranks(
      2,
      [](std::shared_ptr<ProcessGroup> pg) {
        if (pg->rank() == 1) {  // never joins the all-reduce
          std::this_thread::sleep_for(std::chrono::seconds(6));
          return;
        }
        auto t = torch::ones({4});
        try {
          pg->all_reduce_sum(t);
          ADD_FAILURE() << "the all-reduce returned without its peer";
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("all-reduce failed"), std::string::npos) << e.what();
          EXPECT_NE(std::string(e.what()).find("parallel.timeout_s=3"), std::string::npos)
              << e.what();
        }
      },
      /*timeout_s=*/3);
}

}  // namespace
}  // namespace reef
