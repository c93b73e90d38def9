// CausalLM and parameter/FLOP accounting (see causal_lm.h; config resolution is the families',
// models/family.h).
#include "reef/models/causal_lm.h"

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/nn/init.h"
#include "reef/nn/mlp.h"
#include "reef/nn/moe.h"

namespace reef {

CausalLMImpl::CausalLMImpl(const ModelConfig& cfg) : cfg_(resolve_model_config(cfg)) {
  if (cfg_.vocab_size <= 0) {
    usage_error("model.vocab_size must be set (> 0) before building the model, got {}",
                cfg_.vocab_size);
  }
  if (cfg_.arch == "gpt2") {
    transformer = register_module("transformer", GPT2Model(cfg_));
  } else {
    model = register_module("model", LlamaModel(cfg_));
  }
  if (!cfg_.tie_embeddings) {
    lm_head = register_module("lm_head", Linear(cfg_.hidden_size, cfg_.vocab_size, /*bias=*/false));
  }
  if (!skip_init()) reset_parameters();
}

torch::Tensor CausalLMImpl::hidden_states(const torch::Tensor& input_ids, AttentionCache* cache) {
  if (input_ids.dim() != 2) fail("input_ids must be [B, T], got {} dims", input_ids.dim());
  return transformer ? transformer->forward(input_ids, cache) : model->forward(input_ids, cache);
}

torch::Tensor CausalLMImpl::lm_head_weight() const {
  if (lm_head) return lm_head->weight;
  return transformer ? transformer->token_embedding() : model->token_embedding();
}

torch::Tensor CausalLMImpl::forward(const torch::Tensor& input_ids, AttentionCache* cache) {
  return lm_head_logits(hidden_states(input_ids, cache));
}

torch::Tensor CausalLMImpl::lm_head_logits(const torch::Tensor& h) {
  return torch::nn::functional::linear(head_input_hook ? head_input_hook(h) : h, lm_head_weight());
}

torch::Tensor CausalLMImpl::embed(const torch::Tensor& input_ids) {
  if (input_ids.dim() != 2) fail("input_ids must be [B, T], got {} dims", input_ids.dim());
  return transformer ? transformer->embed(input_ids) : model->embed(input_ids);
}

torch::Tensor CausalLMImpl::run_layers(const torch::Tensor& h, int64_t begin, int64_t end) {
  return transformer ? transformer->run_layers(h, begin, end) : model->run_layers(h, begin, end);
}

torch::Tensor CausalLMImpl::head(const torch::Tensor& h) {
  return lm_head_logits(transformer ? transformer->ln_f(h) : model->norm(h));
}

void CausalLMImpl::keep_only(int64_t begin, int64_t end, bool keep_embeddings, bool keep_head) {
  torch::nn::Module& body = transformer ? static_cast<torch::nn::Module&>(*transformer)
                                        : static_cast<torch::nn::Module&>(*model);
  torch::nn::ModuleList& old = transformer ? transformer->h : model->layers;
  torch::nn::ModuleList kept;
  for (int64_t i = 0; i < static_cast<int64_t>(old->size()); ++i) {
    if (i >= begin && i < end)
      kept->push_back(old->ptr(static_cast<size_t>(i)));
    else
      kept->push_back(torch::nn::Identity());  // keeps the indices of the names
  }
  body.replace_module(transformer ? "h" : "layers", kept);
  old = kept;
  const bool keep_token_embedding = keep_embeddings || (keep_head && cfg_.tie_embeddings);
  auto drop = [&](torch::nn::Module& parent, const char* name, auto& holder) {
    parent.unregister_module(name);
    holder = nullptr;
  };
  if (transformer) {
    if (!keep_token_embedding) drop(body, "wte", transformer->wte);
    if (!keep_embeddings) drop(body, "wpe", transformer->wpe);
    if (!keep_head) drop(body, "ln_f", transformer->ln_f);
  } else {
    if (!keep_token_embedding) drop(body, "embed_tokens", model->embed_tokens);
    if (!keep_head) drop(body, "norm", model->norm);
  }
  if (!keep_head && lm_head) drop(*this, "lm_head", lm_head);
}

void CausalLMImpl::set_token_lookup(std::function<torch::Tensor(const torch::Tensor&)> lookup) {
  if (!model) fail("model.arch {}: no replaceable token lookup", cfg_.arch);
  model->embed_fn = std::move(lookup);
}

void CausalLMImpl::set_sequence_shards(int64_t n) {
  if (!model) fail("model.arch {}: no sequence sharding", cfg_.arch);
  model->sequence_shards = n;
}

bool CausalLMImpl::uses_aux_loss() const { return cfg_.n_experts > 0 && cfg_.output_router_logits; }

torch::Tensor CausalLMImpl::embed_tokens(const torch::Tensor& input_ids) {
  if (transformer) return transformer->wte(input_ids);
  return model->embed_fn ? model->embed_fn(input_ids) : model->embed_tokens(input_ids);
}

CausalLMImpl::TrainOutput CausalLMImpl::forward_train(const torch::Tensor& input_ids,
                                                      AttentionCache* cache,
                                                      const torch::Tensor& prefix_embeds) {
  if (input_ids.dim() != 2) fail("input_ids must be [B, T], got {} dims", input_ids.dim());
  if (!uses_aux_loss() && !prefix_embeds.defined())
    return {forward(input_ids, cache), torch::Tensor()};
  auto embeds = embed_tokens(input_ids);  // [B, T, C]
  if (prefix_embeds.defined()) {
    if (prefix_embeds.dim() != 2 || prefix_embeds.size(1) != embeds.size(2))
      fail("prefix embeddings must be [P, {}], got {}", embeds.size(2),
           c10::str(prefix_embeds.sizes()));
    auto prefix =
        prefix_embeds.to(embeds.scalar_type()).unsqueeze(0).expand({embeds.size(0), -1, -1});
    embeds = torch::cat({prefix, embeds}, 1);
  }
  std::vector<torch::Tensor> router_logits;
  auto h = transformer
               ? transformer->forward_embeds(embeds, cache)
               : model->forward_embeds(embeds, cache, uses_aux_loss() ? &router_logits : nullptr);
  auto logits = lm_head_logits(h);
  if (!uses_aux_loss()) return {logits, torch::Tensor()};
  return {logits, load_balancing_loss(router_logits, cfg_.n_experts, cfg_.n_experts_per_tok)};
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
  // Decided by HF name, which is the contract of this class anyway.
  for (auto& item : named_parameters()) {
    const std::string& name = item.key();
    auto& p = item.value();
    const std::string owner = owner_of(name);
    const bool is_norm = owner.find("norm") != std::string::npos || owner == "ln_1" ||
                         owner == "ln_2" || owner == "ln_f";
    if (is_norm && ends_with(name, ".weight")) {
      p.fill_(cfg_.arch == "gemma" ? 0.0 : 1.0);  // gemma's norms scale by (1 + weight)
    } else if (ends_with(name, ".bias")) {
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
  const int64_t C = c.hidden_size, V = c.vocab_size, I = c.intermediate_size;
  const int64_t q = c.n_heads * c.head_dim, kv = c.n_kv_heads * c.head_dim;
  int64_t per_layer = 0, outside = 0, embeddings = V * C;
  if (c.arch == "gpt2") {
    per_layer = 2 * C + (C * 3 * C + 3 * C) + (C * C + C) + 2 * C + (C * I + I) + (I * C + C);
    outside = 2 * C;  // ln_f
    embeddings += c.max_seq_len * C;
  } else {
    per_layer = C * q + 2 * C * kv + q * C;  // q, k, v, o
    if (c.attention_bias) per_layer += q + 2 * kv + (c.arch == "qwen2" ? 0 : C);
    if (c.qk_norm) per_layer += 2 * c.head_dim;
    if (c.n_experts > 0) {
      per_layer += c.n_experts * (C + 3 * C * I);  // router row + SwiGLU expert, per expert
    } else {
      per_layer += 3 * C * I + (c.mlp_bias ? 2 * I + C : 0);
    }
    per_layer += 2 * C;  // input_layernorm, post_attention_layernorm
    outside = C;         // norm
  }
  int64_t total = c.n_layers * per_layer + outside + (c.tie_embeddings ? 0 : V * C);
  if (include_embeddings) total += embeddings;
  return total;
}

double train_flops_per_token(const ModelConfig& in, int64_t seq_len) {
  const ModelConfig c = resolve_model_config(in);
  const double C = static_cast<double>(c.hidden_size), I = static_cast<double>(c.intermediate_size);
  const double q = static_cast<double>(c.n_heads * c.head_dim);
  const double kv = static_cast<double>(c.n_kv_heads * c.head_dim);
  // A MoE token pays for its router and its active experts only.
  const double mlp = c.arch == "gpt2"  ? 2 * C * I
                     : c.n_experts > 0 ? static_cast<double>(c.n_experts) * C +
                                             static_cast<double>(c.n_experts_per_tok) * 3 * C * I
                                       : 3 * C * I;
  const double per_layer = C * q + 2 * C * kv + q * C + mlp;
  const double n_matmul =
      static_cast<double>(c.n_layers) * per_layer + static_cast<double>(c.vocab_size) * C;
  const double attention =
      12.0 * static_cast<double>(c.n_layers) * q * static_cast<double>(seq_len);
  return 6.0 * n_matmul + attention;
}

}  // namespace reef
