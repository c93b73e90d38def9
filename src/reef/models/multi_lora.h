// Several LoRA adapters over one base model at once, as vLLM serves them: every Linear of the
// model gets an output hook (nn/linear.h) that adds, to each row of the batch, the branch of the
// adapter that row's sequence uses (none for the base model). Rows are grouped by adapter, so a
// forward costs one pair of small matmuls per distinct adapter in the batch, not per row, and
// sequences of different adapters and of the base decode in the same step. The base weights are
// never changed; an adapter stays alive while a sequence holds it, so unloading never pulls
// weights from under a running request.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/models/lora.h"

namespace reef {

// One adapter, read from a PEFT folder (checkpoint/peft_io.h) for a given model.
struct ServedAdapter {
  std::string name, dir;
  uint64_t uid = 0;  // distinct for every load (prefix caching keys on it)
  LoraConfig config;
  double scaling = 1;
  // Per targeted Linear (full name): A [r, in] and B [out, r] in the model's dtype and device.
  std::unordered_map<std::string, std::pair<torch::Tensor, torch::Tensor>> layers;
};

// (checkpoint/peft_io.h load_served_adapter reads one from a PEFT folder.)

// The adapters of the next forward's rows; set by the one thread that runs the model.
class AdapterRows {
 public:
  // Row b uses rows[b] (null = the base model alone). Empty: every row is the base model.
  // Groups the rows by adapter once for the whole forward (every Linear reads the groups).
  void set(std::vector<std::shared_ptr<const ServedAdapter>> rows);
  void clear() {
    rows_.clear();
    groups_.clear();
  }
  // y [B, ..., out] plus each row's adapter branch for the Linear `layer` given its input x.
  torch::Tensor apply(const std::string& layer, const torch::Tensor& x,
                      const torch::Tensor& y) const;

 private:
  struct Group {
    const ServedAdapter* adapter;
    int64_t count;       // rows using it
    torch::Tensor rows;  // their indices (int64)
  };
  std::vector<std::shared_ptr<const ServedAdapter>> rows_;  // keeps the adapters alive
  std::vector<Group> groups_;                               // in first-seen order
};

// Installs the per-row hook on every Linear of `model` (replacing any output hook). The model
// then adds, in every forward, the branches `rows` holds at that moment.
void enable_multi_lora(CausalLM& model, std::shared_ptr<AdapterRows> rows);

}  // namespace reef
