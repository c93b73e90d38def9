// Per-row LoRA adapters over one base model (see multi_lora.h).
#include "reef/models/multi_lora.h"

#include <algorithm>

namespace reef {

torch::Tensor AdapterRows::apply(const std::string& layer, const torch::Tensor& x,
                                 const torch::Tensor& y) const {
  if (rows_.empty()) return y;
  // Rows grouped by adapter: (adapter, its row indices), in first-seen order.
  std::vector<std::pair<const ServedAdapter*, std::vector<int64_t>>> groups;
  for (size_t b = 0; b < rows_.size(); ++b) {
    const ServedAdapter* a = rows_[b].get();
    if (!a) continue;
    auto it =
        std::find_if(groups.begin(), groups.end(), [a](const auto& g) { return g.first == a; });
    if (it == groups.end()) {
      groups.push_back({a, {}});
      it = groups.end() - 1;
    }
    it->second.push_back(static_cast<int64_t>(b));
  }
  torch::Tensor out = y;
  for (const auto& [adapter, rows] : groups) {
    auto layer_it = adapter->layers.find(layer);
    if (layer_it == adapter->layers.end()) continue;  // this adapter leaves the layer alone
    const auto& [A, B] = layer_it->second;
    if (static_cast<int64_t>(rows.size()) == x.size(0)) {  // the whole batch: no gather
      out = out + (torch::linear(torch::linear(x, A), B) * adapter->scaling).to(out.scalar_type());
      continue;
    }
    auto idx = torch::tensor(rows, torch::kInt64).to(x.device());
    auto delta = torch::linear(torch::linear(x.index_select(0, idx), A), B) * adapter->scaling;
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
