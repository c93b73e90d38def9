// CausalLM and parameter/FLOP accounting (see causal_lm.h; config resolution is the families',
// models/family.h).
#include "reef/models/causal_lm.h"

#include <algorithm>
#include <cmath>
#include <unordered_set>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/nn/init.h"
#include "reef/nn/mlp.h"
#include "reef/nn/moe.h"
#include "reef/nn/norms.h"

namespace reef {

CausalLMImpl::CausalLMImpl(const ModelConfig& cfg) : cfg_(resolve_model_config(cfg)) {
  if (cfg_.vocab_size <= 0) {
    usage_error("model.vocab_size must be set (> 0) before building the model, got {}",
                cfg_.vocab_size);
  }
  body_ = register_module(body_name(cfg_), make_decoder_body(cfg_));
  if (cfg_.num_labels > 0) {  // a sequence classifier: transformers' `score`, never tied
    lm_head = register_module(head_name(), Linear(cfg_.hidden_size, cfg_.num_labels, false));
  } else if (!cfg_.tie_embeddings) {
    lm_head = register_module(head_name(), Linear(cfg_.hidden_size, cfg_.vocab_size, false));
  }
  logits = register_module("logits", LogitsHead());
  if (!skip_init()) reset_parameters();
}

Positions CausalLMImpl::positions(const torch::Tensor& input_ids, AttentionCache* cache,
                                  int64_t prefix) const {
  if (input_ids.dim() != 2) fail("input_ids must be [B, T], got {} dims", input_ids.dim());
  return Positions{input_ids.size(0), prefix + input_ids.size(1), cache, input_ids.device()};
}

torch::Tensor CausalLMImpl::run(const torch::Tensor& x, const Positions& p, int64_t begin,
                                int64_t end, Until until, const torch::Tensor& prefix_embeds,
                                std::vector<torch::Tensor>* router_logits) {
  torch::Tensor h = x;
  if (!x.is_floating_point()) {  // token ids: embed them
    h = embed_tokens(x);         // [B, T, C]
    if (prefix_embeds.defined()) {
      if (prefix_embeds.dim() != 2 || prefix_embeds.size(1) != h.size(2))
        fail("prefix embeddings must be [P, {}], got {}", h.size(2),
             c10::str(prefix_embeds.sizes()));
      auto prefix = prefix_embeds.to(h.scalar_type()).unsqueeze(0).expand({h.size(0), -1, -1});
      h = torch::cat({prefix, h}, 1);
    }
    h = body_->prepare(h, p);
  }
  if (begin < end) {
    LayerContext ctx = body_->context(p, h.scalar_type());
    ctx.router_logits = router_logits;
    h = body_->run_layers(h, begin, end, ctx);
  }
  if (until == Until::kLayers) return h;
  h = body_->final_norm(h);
  if (until == Until::kNorm) return h;
  return lm_head_logits(h);
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, AttentionCache* cache) {
  return run(input_ids, positions(input_ids, cache), 0, body_->n_layers(), Until::kNorm);
}

std::string CausalLMImpl::token_embedding_name() const {
  const auto* w = body_->tokens()->weight.unsafeGetTensorImpl();
  for (const auto& item : named_parameters(true))
    if (item.value().unsafeGetTensorImpl() == w) return item.key();
  fail("the model holds no token embedding (internal error)");
}

torch::Tensor CausalLMImpl::lm_head_weight() const {
  if (lm_head) return lm_head->weight;
  return body_->tokens()->weight;
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, AttentionCache* cache) {
  return run(input_ids, positions(input_ids, cache), 0, body_->n_layers(), Until::kLogits);
}

torch::Tensor CausalLMImpl::lm_head_logits(const torch::Tensor& h) {
  return logits(h, lm_head_weight());
}

torch::Tensor CausalLMImpl::embed(const torch::Tensor& input_ids) {
  return run(input_ids, positions(input_ids, nullptr), 0, 0, Until::kLayers);
}

torch::Tensor CausalLMImpl::run_layers(const torch::Tensor& h, int64_t begin, int64_t end,
                                       int64_t seq_len) {
  return run(h, Positions{h.size(0), seq_len, nullptr, h.device()}, begin, end, Until::kLayers);
}

torch::Tensor CausalLMImpl::head(const torch::Tensor& h) {
  return run(h, Positions{h.size(0), h.size(1), nullptr, h.device()}, 0, 0, Until::kLogits);
}

void CausalLMImpl::keep_only(int64_t begin, int64_t end, bool keep_embeddings, bool keep_head) {
  const bool keep_token_embedding = keep_embeddings || (keep_head && ties_lm_head(cfg_));
  body_->keep_only(begin, end, keep_token_embedding, keep_embeddings, keep_head);
  if (!keep_head && lm_head) {
    unregister_module(head_name());
    lm_head = nullptr;
  }
}

std::string CausalLMImpl::head_name() const { return cfg_.num_labels > 0 ? "score" : "lm_head"; }

bool CausalLMImpl::uses_aux_loss() const { return cfg_.n_experts > 0 && cfg_.output_router_logits; }

torch::Tensor CausalLMImpl::embed_tokens(const torch::Tensor& input_ids) {
  return body_->tokens()(input_ids);
}

CausalLMImpl::TrainOutput CausalLMImpl::forward_train(const torch::Tensor& input_ids,
                                                      AttentionCache* cache,
                                                      const torch::Tensor& prefix_embeds,
                                                      const torch::Tensor& head_positions) {
  const int64_t prefix = prefix_embeds.defined() ? prefix_embeds.size(0) : 0;
  std::vector<torch::Tensor> router_logits;
  const bool selected = head_positions.defined();
  auto out = run(input_ids, positions(input_ids, cache, prefix), 0, body_->n_layers(),
                 selected ? Until::kNorm : Until::kLogits, prefix_embeds,
                 uses_aux_loss() ? &router_logits : nullptr);
  if (selected) {
    if (head_positions.sizes() != input_ids.sizes() || head_positions.scalar_type() != torch::kBool)
      fail("head positions must be [B, T] bool like the input ids {}, got {}",
           c10::str(input_ids.sizes()), c10::str(head_positions.sizes()));
    auto h = prefix > 0 ? out.narrow(1, prefix, input_ids.size(1)) : out;  // [B, T, C]
    out = lm_head_logits(h.index({head_positions}));                       // [N, V]
  }
  if (!uses_aux_loss()) return {out, torch::Tensor()};
  return {out, load_balancing_loss(router_logits, cfg_.n_experts, cfg_.n_experts_per_tok)};
}

torch::Tensor causal_lm_loss(const ModelConfig& cfg, const torch::Tensor& logits,
                             const torch::Tensor& targets, const torch::Tensor& aux_loss) {
  const int64_t V = logits.size(-1);
  auto loss = torch::nn::functional::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat),
                                                   targets.reshape({-1}));
  if (aux_loss.defined()) loss = loss + cfg.router_aux_loss_coef * aux_loss.to(torch::kFloat);
  return loss;
}

torch::Tensor causal_lm_loss_sum(const torch::Tensor& logits, const torch::Tensor& targets) {
  const int64_t V = logits.size(-1);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, V}).to(torch::kFloat),
                                              targets.reshape({-1}),
                                              torch::nn::functional::CrossEntropyFuncOptions()
                                                  .ignore_index(kIgnoreTarget)
                                                  .reduction(torch::kSum));
}

namespace {

// The module name that owns a parameter: "model.layers.0.self_attn.o_proj.weight" -> "o_proj".
std::string owner_of(const std::string& name) {
  auto end = name.rfind('.');
  if (end == std::string::npos) return "";
  auto begin = name.rfind('.', end - 1);
  return name.substr(begin == std::string::npos ? 0 : begin + 1,
                     end - (begin == std::string::npos ? 0 : begin + 1));
}

}  // namespace

void CausalLMImpl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double std = cfg_.init_std;
  const double residual_std = std / std::sqrt(2.0 * static_cast<double>(cfg_.n_layers));
  // The norms reset themselves (ones, or zeros for a (1 + weight) norm) and draw nothing.
  std::unordered_set<const void*> norm_params;
  for (const auto& m : modules(/*include_self=*/false)) {
    if (auto* n = m->as<RMSNormImpl>()) {
      n->reset_parameters();
      norm_params.insert(n->weight.unsafeGetTensorImpl());
    } else if (auto* l = m->as<LayerNormImpl>()) {
      l->reset_parameters();
      for (const auto& p : l->parameters()) norm_params.insert(p.unsafeGetTensorImpl());
    }
  }
  // Decided by HF name, which is the contract of this class anyway.
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    if (norm_params.count(p.unsafeGetTensorImpl())) continue;
    const std::string owner = owner_of(name);
    if (ends_with(name, ".bias")) {
      p.zero_();
    } else if (owner == "o_proj" || owner == "down_proj" || owner == "c_proj" || owner == "w2") {
      p.normal_(0.0, residual_std);
    } else {
      p.normal_(0.0, std);
    }
  }
}

int64_t count_parameters(const ModelConfig& in, bool include_embeddings) {
  const ModelConfig c = resolve_model_config(in);
  return model_family(c.arch).count_parameters(c, include_embeddings);
}

double train_flops_per_token(const ModelConfig& in, int64_t seq_len) {
  const ModelConfig c = resolve_model_config(in);
  const double C = static_cast<double>(c.hidden_size);
  const double q = static_cast<double>(c.n_heads * c.head_dim);
  const double n_matmul =
      static_cast<double>(c.n_layers) * model_family(c.arch).layer_matmul_weights(c) +
      static_cast<double>(c.num_labels > 0 ? c.num_labels : c.vocab_size) * C;
  const double attention =
      12.0 * static_cast<double>(c.n_layers) * q * static_cast<double>(seq_len);
  return 6.0 * n_matmul + attention;
}

}  // namespace reef
