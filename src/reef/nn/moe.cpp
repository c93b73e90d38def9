// Sparse MoE block, top-k routing and the load-balancing loss (see moe.h). Op order follows
// transformers' modeling_mixtral.py (5.x) so fp32 results agree to rounding: router probabilities
// in float32, expert outputs scaled by the float32 weights then cast to the input dtype, and
// contributions summed into a zero tensor expert by expert in increasing expert order.
#include "reef/nn/moe.h"

#include "reef/base/error.h"
#include "reef/nn/mlp.h"

namespace reef {

// float32, as HF; float64 stays float64 (tests, gradient checks), as in rms_norm.
torch::ScalarType routing_dtype(const torch::Tensor& t) {
  return t.scalar_type() == torch::kDouble ? torch::kDouble : torch::kFloat;
}

TopKRouting route_top_k(const torch::Tensor& router_logits, int64_t top_k) {
  auto probs = torch::softmax(router_logits.to(routing_dtype(router_logits)), -1);  // [N, E]
  auto [values, indices] = torch::topk(probs, top_k, -1);                           // [N, k]
  values = values / values.sum(-1, /*keepdim=*/true);
  return {values, indices};
}

torch::Tensor load_balancing_loss(const std::vector<torch::Tensor>& router_logits,
                                  int64_t n_experts, int64_t top_k) {
  if (router_logits.empty()) return torch::zeros({}, torch::kFloat);
  const auto opts = torch::TensorOptions(routing_dtype(router_logits.front()))
                        .device(router_logits.front().device());
  auto chosen = torch::zeros({n_experts}, opts);
  auto prob_sum = torch::zeros({n_experts}, opts);
  int64_t rows = 0;
  for (const auto& logits : router_logits) {  // [N, E]
    // As HF: softmax in the logits' own dtype (float32 in training with fp32 weights).
    auto probs = torch::softmax(logits, -1);
    auto selected = std::get<1>(torch::topk(probs, top_k, -1));  // [N, k]
    chosen = chosen + torch::bincount(selected.reshape({-1}), {}, n_experts).to(opts.dtype());
    prob_sum = prob_sum + probs.to(opts.dtype()).sum(0);
    rows += logits.size(0);
  }
  const double n = static_cast<double>(rows);
  return (chosen / n * (prob_sum / n)).sum() * static_cast<double>(n_experts);
}

ExpertMLPImpl::ExpertMLPImpl(int64_t hidden_size, int64_t intermediate_size, std::string activation)
    : activation_(std::move(activation)) {
  auto lin = [](int64_t in, int64_t out) { return Linear(in, out, /*bias=*/false); };
  w1 = register_module("w1", lin(hidden_size, intermediate_size));
  w2 = register_module("w2", lin(intermediate_size, hidden_size));
  w3 = register_module("w3", lin(hidden_size, intermediate_size));
}

torch::Tensor ExpertMLPImpl::forward(const torch::Tensor& x) {
  return w2(activation(w1(x), activation_) * w3(x));
}

SparseMoEImpl::SparseMoEImpl(const SparseMoEOptions& o) : options_(o) {
  if (o.n_experts() < 1 || o.top_k() < 1 || o.top_k() > o.n_experts()) {
    usage_error("MoE needs 1 <= experts per token ({}) <= experts ({})", o.top_k(), o.n_experts());
  }
  if (!is_supported_activation(o.activation())) {
    usage_error("unsupported activation '{}': expected one of {}", o.activation(),
                supported_activations());
  }
  gate = register_module("gate", Linear(o.hidden_size(), o.n_experts(), /*bias=*/false));
  experts = register_module("experts", torch::nn::ModuleList());
  for (int64_t e = 0; e < o.n_experts(); ++e) {
    experts->push_back(ExpertMLP(o.hidden_size(), o.intermediate_size(), o.activation()));
  }
}

torch::Tensor SparseMoEImpl::forward(const torch::Tensor& x,
                                     std::vector<torch::Tensor>* router_logits) {
  const auto sizes = x.sizes().vec();
  auto flat = x.reshape({-1, x.size(-1)});  // [N, C]
  auto logits = gate(flat);                 // [N, E]
  if (router_logits) router_logits->push_back(logits);
  TopKRouting r = route_top_k(logits, options_.top_k());
  const int64_t k = options_.top_k(), E = options_.n_experts();

  // Every (token, slot) choice, grouped by expert; a stable sort keeps token order inside a group.
  auto choice_expert = r.experts.reshape({-1});  // [N*k]
  auto order = std::get<1>(
      choice_expert.sort(/*stable=*/std::optional<bool>(true), /*dim=*/0, /*descending=*/false));
  auto token_of = order.div(k, "floor");                                          // [N*k]
  auto weight_of = r.weights.reshape({-1}).index_select(0, order).unsqueeze(-1);  // [N*k, 1]
  auto counts = torch::bincount(choice_expert, {}, E).to(torch::kCPU);
  const int64_t* count = counts.data_ptr<int64_t>();

  auto grouped = flat.index_select(0, token_of);  // [N*k, C]
  std::vector<torch::Tensor> outputs;
  int64_t start = 0;
  for (int64_t e = 0; e < E; ++e) {
    if (count[e] == 0) continue;
    auto rows = grouped.narrow(0, start, count[e]);
    auto y = experts->at<ExpertMLPImpl>(e).forward(rows) * weight_of.narrow(0, start, count[e]);
    outputs.push_back(y.to(x.scalar_type()));
    start += count[e];
  }
  auto out = torch::zeros_like(flat);
  if (!outputs.empty()) out = out.index_add(0, token_of, torch::cat(outputs, 0));
  return out.view(sizes);
}

}  // namespace reef
