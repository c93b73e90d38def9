// One checkpointer for every parallel layout: save(state) and load(dir) over the strategy's
// sharded state (parallel/strategy.h). The layout of the folder (checkpoint.layout: one
// consolidated Hugging Face folder written by rank 0, or distributed pieces every rank writes)
// is an option of the same code, and loading reads either layout into any strategy: each rank
// reads only the parts of each tensor it holds (its tensor-parallel boxes, its stage, its FSDP
// or ZeRO-1 flat slices), from the pieces of a distributed checkpoint or from the whole tensors
// of a consolidated one. Folder format: train/checkpoint_files.h.
#pragma once

#include <memory>
#include <string>

#include "reef/config/config.h"
#include "reef/parallel/strategy.h"
#include "reef/tokenizer/tokenizer.h"
#include "reef/train/checkpoint_files.h"
#include "reef/train/peft.h"

namespace reef {

class Checkpointer {
 public:
  // `peft` (attached to the strategy's model): checkpoints hold its adapter in place of the
  // model's weights (always consolidated: small), and loading leaves the weights alone (the
  // adapter was read when it was attached; the base comes from its own folder).
  Checkpointer(const Config& cfg, Strategy& strategy, const Tokenizer& tokenizer,
               std::shared_ptr<Peft> peft = nullptr);

  // Saves the checkpoint of `state.step` (a collective: every rank calls it) and keeps the
  // newest checkpoint.keep_last. Returns its folder ("" on ranks that wrote nothing).
  std::string save(const TrainerState& state);
  // Verifies and loads a checkpoint folder of either layout into the strategy's model and
  // optimizer; returns the trainer state. Throws naming the file or tensor that is wrong.
  TrainerState load(const std::string& dir);

 private:
  const Config& cfg_;
  Strategy& strategy_;
  const Tokenizer& tokenizer_;
  std::shared_ptr<Peft> peft_;
};

}  // namespace reef
