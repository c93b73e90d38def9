// Implementation of train/batches.h.
#include "reef/train/batches.h"

#include <optional>

#include "reef/base/error.h"
#include "reef/models/causal_lm.h"
#include "reef/nn/autocast.h"
#include "reef/nn/packing.h"

namespace reef {

int64_t count_targets(const GptSampleSource& src, int64_t first, int64_t n) {
  const int64_t T = src.seq_len();
  int64_t count = 0;
  SampleLayout layout;
  for (int64_t b = 0; b < n; ++b) {
    if (!src.layout(first + b, &layout)) {
      count += T;
      continue;
    }
    for (uint8_t m : layout.target_mask) count += m ? 1 : 0;
  }
  return count;
}

void trim_trailing_padding(TrainBatch& b, int64_t multiple) {
  if (!b.inputs.segment_ids.defined()) return;
  const int64_t T = b.inputs.segment_ids.size(1);
  auto used = (b.inputs.segment_ids != 0).any(0).to(torch::kCPU).contiguous();  // [T]
  const auto* u = used.data_ptr<bool>();
  int64_t keep = T;
  while (keep > 0 && !u[keep - 1]) --keep;
  const int64_t m = std::max<int64_t>(1, multiple);
  keep = std::min(T, std::max<int64_t>(m, (keep + m - 1) / m * m));
  if (keep == T) return;
  b.inputs.input_ids = b.inputs.input_ids.narrow(1, 0, keep);
  b.inputs.position_ids = b.inputs.position_ids.narrow(1, 0, keep);
  b.inputs.segment_ids = b.inputs.segment_ids.narrow(1, 0, keep);
  b.targets = b.targets.narrow(1, 0, keep);
}

TrainBatch make_train_batch(const GptSampleSource& src, int64_t first, int64_t n, int64_t V,
                            const torch::Device& device, int64_t column_multiple) {
  const int64_t T = src.seq_len(), T1 = T + 1;
  auto out = torch::empty({n, T1}, torch::kInt64);
  int64_t* dst = out.data_ptr<int64_t>();
  std::vector<int32_t> s;
  SampleLayout layout;
  torch::Tensor mask, pos, seg;               // [n, T] when the samples have layouts
  std::vector<float> row_values, all_values;  // per-sample loss inputs (DPO reference log-probs)
  int64_t n_values = -1;
  for (int64_t b = 0; b < n; ++b) {
    if (src.layout(first + b, &layout)) {
      if (!mask.defined()) {
        mask = torch::ones({n, T}, torch::kBool);
        pos = torch::arange(T, torch::kInt64).repeat({n, 1});
        seg = torch::zeros({n, T}, torch::kInt64);
      }
      if (static_cast<int64_t>(layout.target_mask.size()) != T ||
          static_cast<int64_t>(layout.position_ids.size()) != T ||
          static_cast<int64_t>(layout.segment_ids.size()) != T)
        fail("data: sample {} has a layout of the wrong length (internal error)", first + b);
      auto* m = mask[b].data_ptr<bool>();
      auto* p = pos[b].data_ptr<int64_t>();
      auto* g = seg[b].data_ptr<int64_t>();
      for (int64_t t = 0; t < T; ++t) {
        m[t] = layout.target_mask[static_cast<size_t>(t)] != 0;
        p[t] = layout.position_ids[static_cast<size_t>(t)];
        g[t] = layout.segment_ids[static_cast<size_t>(t)];
      }
    } else if (mask.defined()) {
      fail("data: sample {} has no layout while others do (internal error)", first + b);
    }
    if (src.values(first + b, &row_values)) {
      if (n_values >= 0 && static_cast<int64_t>(row_values.size()) != n_values)
        fail("data: sample {} has {} values, others {} (internal error)", first + b,
             row_values.size(), n_values);
      n_values = static_cast<int64_t>(row_values.size());
      all_values.insert(all_values.end(), row_values.begin(), row_values.end());
    }
    src.sample(first + b, &s);
    if (static_cast<int64_t>(s.size()) != T1)
      fail("data: sample {} has {} tokens, expected {} (internal error)", first + b, s.size(), T1);
    for (int64_t t = 0; t < T1; ++t) {
      // An id past the embedding would be an out-of-bounds read: data tokenized with another
      // tokenizer is caught here, on the first batch that shows it.
      if (s[t] < 0 || s[t] >= V)
        usage_error(
            "data: token id {} in sample {} is outside model.vocab_size={}; was the "
            "dataset prepared with another tokenizer than data.tokenizer?",
            s[t], first + b, V);
      dst[b * T1 + t] = s[t];
    }
  }
  TrainBatch batch;  // on the CPU first: trimmed there, then moved
  batch.inputs.input_ids = out.narrow(1, 0, T);
  batch.targets = out.narrow(1, 1, T).clone();
  if (mask.defined()) {
    batch.targets.masked_fill_(mask.logical_not(), kIgnoreTarget);
    batch.n_targets = mask.sum().item<int64_t>();
    batch.inputs.position_ids = pos;
    batch.inputs.segment_ids = seg;
  } else {
    batch.n_targets = n * T;
  }
  if (src.trailing_padding()) trim_trailing_padding(batch, column_multiple);
  batch.inputs.input_ids = batch.inputs.input_ids.to(device);
  batch.targets = batch.targets.to(device);
  if (mask.defined()) {
    batch.inputs.position_ids = batch.inputs.position_ids.to(device);
    batch.inputs.segment_ids = batch.inputs.segment_ids.to(device);
  }
  if (n_values >= 0) {
    if (static_cast<int64_t>(all_values.size()) != n * n_values)
      fail("data: samples {}..{} give values for some rows only (internal error)", first,
           first + n - 1);
    batch.values = torch::tensor(all_values, torch::kFloat).view({n, n_values}).to(device);
  }
  return batch;
}

void mark_head_positions(TrainBatch& batch) {
  if (batch.n_targets < batch.targets.numel())
    batch.inputs.head_positions = batch.targets != kIgnoreTarget;
}

ModelOutputs forward_batch(CausalLM& model, const TrainBatch& batch, bool bf16) {
  std::optional<PackedSequences> packed;
  if (batch.inputs.segment_ids.defined())
    packed.emplace(batch.inputs.position_ids, batch.inputs.segment_ids);
  ModelOutputs out;
  out.positions = batch.inputs.head_positions;
  AutocastScope autocast(bf16, batch.inputs.input_ids.device().type());
  out.logits =
      model->forward_train(batch.inputs.input_ids, packed ? &*packed : nullptr, {}, out.positions)
          .logits;
  return out;
}

}  // namespace reef
