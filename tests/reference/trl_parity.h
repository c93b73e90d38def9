// The training overrides under which Reef's preference runs are compared with trl's trainers
// (dpo_reference.py, rm_reference.py use the same): rows of 128 tokens, 5 AdamW steps of 8 pairs
// (every pair of a test file) at a constant lr 0.01, betas 0.9/0.95, eps 1e-8, no weight decay,
// no clipping, no validation, one thread.
#pragma once

#include <string>
#include <vector>

namespace reef::testing {

inline std::vector<std::string> trl_parity_overrides() {
  return {"data.seq_len=128",     "train.max_steps=5",    "train.micro_batch_size=8",
          "train.grad_accum=1",   "train.eval_every=0",   "train.clip_grad=0",
          "optim.lr=0.01",        "optim.min_lr=0.01",    "optim.schedule=constant",
          "optim.warmup_steps=0", "optim.weight_decay=0", "optim.beta1=0.9",
          "optim.beta2=0.95",     "optim.eps=1e-8",       "logging.tensorboard=false",
          "logging.progress=off", "run.threads=1"};
}

}  // namespace reef::testing
