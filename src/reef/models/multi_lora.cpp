// Per-row LoRA adapters over one base model (see multi_lora.h).
#include "reef/models/multi_lora.h"

#include <algorithm>

namespace reef {

void AdapterRows::set(std::vector<std::shared_ptr<const ServedAdapter>> rows) {
  rows_ = std::move(rows);
  groups_.clear();
  std::vector<std::pair<const ServedAdapter*, std::vector<int64_t>>> by_adapter;
  for (size_t b = 0; b < rows_.size(); ++b) {
    const ServedAdapter* a = rows_[b].get();
    if (!a) continue;
    auto it = std::find_if(by_adapter.begin(), by_adapter.end(),
                           [a](const auto& g) { return g.first == a; });
    if (it == by_adapter.end()) {
      by_adapter.push_back({a, {}});
      it = by_adapter.end() - 1;
    }
    it->second.push_back(static_cast<int64_t>(b));
  }
  for (auto& [adapter, idx] : by_adapter)
    groups_.push_back(
        {adapter, static_cast<int64_t>(idx.size()), torch::tensor(idx, torch::kInt64)});
}

torch::Tensor AdapterRows::apply(const std::string& layer, const torch::Tensor& x,
                                 const torch::Tensor& y) const {
  torch::Tensor out = y;
  for (const Group& g : groups_) {
    auto layer_it = g.adapter->layers.find(layer);
    if (layer_it == g.adapter->layers.end()) continue;  // this adapter leaves the layer alone
    const auto& [A, B] = layer_it->second;
    if (g.count == x.size(0)) {  // the whole batch: no gather
      out =
          out + (torch::linear(torch::linear(x, A), B) * g.adapter->scaling).to(out.scalar_type());
      continue;
    }
    auto idx = g.rows.to(x.device());
    auto delta = torch::linear(torch::linear(x.index_select(0, idx), A), B) * g.adapter->scaling;
    out = out.index_add(0, idx, delta.to(out.scalar_type()));
  }
  return out;
}

void enable_multi_lora(CausalLM& model, std::shared_ptr<AdapterRows> rows) {
  for (auto& [name, linear] : linear_modules(model)) {
    linear->output_hook = [rows, name = name](const torch::Tensor& x, const torch::Tensor& y) {
      return rows->apply(name, x, y);
    };
  }
}

}  // namespace reef
