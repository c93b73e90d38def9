// Sparse mixture of experts (Mixtral): a linear router picks the top-k of E SwiGLU experts for
// each token and the block returns their outputs weighted by the renormalised router
// probabilities; plus the Switch-Transformer load-balancing loss over the routers' logits.
// Semantics are transformers' MixtralSparseMoeBlock and load_balancing_loss_func; parameter
// names are the Hub's Mixtral checkpoints' ("gate.weight", "experts.E.w1.weight", ...).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "reef/nn/linear.h"

namespace reef {

// The routing decision for N tokens.
struct TopKRouting {
  torch::Tensor weights;  // [N, k] float32 (float64 for float64 logits): top-k softmax
                          // probabilities renormalised to sum 1
  torch::Tensor experts;  // [N, k] int64: the chosen experts, most probable first
};

// router_logits [N, E] -> softmax in float32, top-k, renormalised (as MixtralTopKRouter).
TopKRouting route_top_k(const torch::Tensor& router_logits, int64_t top_k);

// Load-balancing auxiliary loss of transformers' load_balancing_loss_func (no attention mask):
// over all layers' router logits [N, E] together, E * sum_e f_e * P_e where f_e is the share of
// (token, slot) top-k choices that went to expert e per token row and P_e the mean router
// probability of e. Returns a float32 scalar (float64 for float64 logits); gradients flow
// through P only. An empty list -> 0.
torch::Tensor load_balancing_loss(const std::vector<torch::Tensor>& router_logits,
                                  int64_t n_experts, int64_t top_k);

// One expert: w2(act(w1(x)) * w3(x)); Mixtral's names for gate (w1), down (w2) and up (w3).
class ExpertMLPImpl : public torch::nn::Module {
 public:
  ExpertMLPImpl(int64_t hidden_size, int64_t intermediate_size, std::string activation);
  torch::Tensor forward(const torch::Tensor& x);  // [N, C] -> [N, C]

  Linear w1{nullptr}, w2{nullptr}, w3{nullptr};

 private:
  std::string activation_;
};
TORCH_MODULE(ExpertMLP);

struct SparseMoEOptions {
  SparseMoEOptions(int64_t hidden_size, int64_t intermediate_size, int64_t n_experts, int64_t top_k)
      : hidden_size_(hidden_size),
        intermediate_size_(intermediate_size),
        n_experts_(n_experts),
        top_k_(top_k) {}
  TORCH_ARG(int64_t, hidden_size);
  TORCH_ARG(int64_t, intermediate_size);  // of each expert
  TORCH_ARG(int64_t, n_experts);
  TORCH_ARG(int64_t, top_k);
  TORCH_ARG(std::string, activation) = "silu";
};

// The sparse block. Tokens are grouped by expert (one index_select, one matmul chain per expert
// on only its tokens, one index_add_), so the work is top_k experts per token, never E.
class SparseMoEImpl : public torch::nn::Module {
 public:
  explicit SparseMoEImpl(const SparseMoEOptions& options);
  // x [B, T, C] -> [B, T, C]. When router_logits is given, this layer's router logits
  // [B*T, E] are appended to it (for load_balancing_loss).
  torch::Tensor forward(const torch::Tensor& x,
                        std::vector<torch::Tensor>* router_logits = nullptr);
  const SparseMoEOptions& options() const { return options_; }

  Linear gate{nullptr};  // router: [E, C], no bias
  torch::nn::ModuleList experts{nullptr};

 private:
  SparseMoEOptions options_;
};
TORCH_MODULE(SparseMoE);

}  // namespace reef
