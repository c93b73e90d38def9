// Test helpers for the distributed integration tests: the small pretraining they run in one
// process and in several layouts, and the check that two such runs agree (per-step metrics and
// the checkpointed tensors, in either checkpoint layout). Header-only: for test binaries that
// link the checkpoint layer (the integration tests).
#pragma once

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "testing/checkpoint_tensors.h"
#include "testing/testing.h"

namespace reef::testing {

// `reef pretrain` of `recipe` at hidden 64 and 2 layers: 6 steps of a global batch of 8
// sequences of 32 tokens (4 x 2 accumulated), checkpoints at steps 3 and 6, fp32, one thread,
// on dir/train.txt (write_fortune_corpus), no validation. `extra` comes last, so it overrides.
inline std::vector<std::string> pretrain_args(
    const ScratchDir& dir, const std::string& run, std::vector<std::string> extra = {},
    const std::string& recipe = "recipes/llama-tiny.yaml") {
  std::vector<std::string> a = {"pretrain",
                                "--config",
                                recipe,
                                "run.dir=" + run,
                                "model.hidden_size=64",
                                "model.n_layers=2",
                                "data.seq_len=32",
                                "train.micro_batch_size=4",
                                "train.grad_accum=2",
                                "train.max_steps=6",
                                "train.eval_every=0",
                                "checkpoint.every=3",
                                "checkpoint.keep_last=0",
                                "run.threads=1",
                                "logging.progress=off",
                                "train.precision=fp32",
                                "optim.warmup_steps=2",
                                "data.train_files=[" + dir / "train.txt]",
                                "data.valid_files=[]"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// What expect_same_run compares.
struct SameRunCheck {
  // metrics.jsonl keys and their relative tolerance, at every step >= `from` of the reference.
  std::vector<std::pair<std::string, double>> metrics = {{"loss", 1e-5}};
  int64_t from = 1;
  // Rows the reference must have per metric, and `got` as many (0: at least one, any number).
  size_t steps = 6;
  // Checkpoint groups ("model", "optimizer") compared with torch::allclose(rtol, atol).
  std::vector<std::string> groups = {"model"};
  double rtol = 1e-5, atol = 1e-6;
};

// `got` logged the same metrics as `ref` and its step-`step` checkpoint (none when step <= 0)
// holds the same tensors, as `check` says.
inline void expect_same_run(const std::string& ref, const std::string& got, int64_t step,
                            const SameRunCheck& check = {}) {
  for (const auto& [key, rel] : check.metrics) {
    auto a = metric_by_step(ref + "/metrics.jsonl", key),
         b = metric_by_step(got + "/metrics.jsonl", key);
    if (check.steps > 0) {
      ASSERT_EQ(a.size(), check.steps) << key;
      ASSERT_EQ(b.size(), a.size()) << key;
    } else {
      ASSERT_FALSE(a.empty()) << key;
    }
    for (const auto& [s, v] : a) {
      if (s < check.from) continue;
      ASSERT_TRUE(b.count(s)) << key << " at step " << s;
      EXPECT_NEAR(b[s], v, rel * std::abs(v)) << key << " at step " << s;
    }
  }
  if (step <= 0) return;
  const std::string f = "/checkpoints/step_" + std::to_string(step);
  for (const auto& group : check.groups) {
    auto wa = checkpoint_tensors(ref + f, group), wb = checkpoint_tensors(got + f, group);
    ASSERT_FALSE(wa.empty()) << group;
    ASSERT_EQ(wa.size(), wb.size()) << group;
    for (const auto& [name, t] : wa) {
      ASSERT_TRUE(wb.count(name)) << group << " " << name;
      ASSERT_EQ(wb[name].sizes(), t.sizes()) << group << " " << name;
      EXPECT_TRUE(torch::allclose(wb[name], t, check.rtol, check.atol))
          << group << " " << name << " max diff " << (wb[name] - t).abs().max().item<double>();
    }
  }
}

}  // namespace reef::testing
