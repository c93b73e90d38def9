// CausalLM, config resolution and parameter/FLOP accounting (see causal_lm.h).
#include "reef/models/causal_lm.h"

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/nn/init.h"
#include "reef/nn/mlp.h"
#include "reef/nn/moe.h"

namespace reef {

const std::vector<std::string>& supported_archs() {
  static const std::vector<std::string> archs = {"llama", "mistral", "mixtral", "qwen2",
                                                 "qwen3", "gemma",   "gpt2"};
  return archs;
}

std::string supported_archs_list() {
  std::string out;
  for (const auto& a : supported_archs()) out += (out.empty() ? "" : ", ") + a;
  return out;
}

bool is_llama_family(const std::string& arch) {
  return arch == "llama" || arch == "mistral" || arch == "mixtral" || arch == "qwen2" ||
         arch == "qwen3" || arch == "gemma";
}

ModelConfig resolve_model_config(const ModelConfig& in) {
  ModelConfig c = in;
  const auto& archs = supported_archs();
  if (std::find(archs.begin(), archs.end(), c.arch) == archs.end()) {
    usage_error("model.arch '{}' is not supported; supported: {}", c.arch, supported_archs_list());
  }
  const bool gpt2 = c.arch == "gpt2";
  auto positive = [](const char* key, int64_t v) {
    if (v <= 0) usage_error("model.{} must be positive, got {}", key, v);
  };
  positive("hidden_size", c.hidden_size);
  positive("n_layers", c.n_layers);
  positive("n_heads", c.n_heads);
  positive("max_seq_len", c.max_seq_len);
  if (c.vocab_size < 0) usage_error("model.vocab_size must be >= 0, got {}", c.vocab_size);
  if (c.n_kv_heads < 0 || c.head_dim < 0 || c.intermediate_size < 0) {
    usage_error("model.n_kv_heads, head_dim and intermediate_size must be >= 0 (0 = derived)");
  }
  if (!(c.norm_eps > 0)) usage_error("model.norm_eps must be positive, got {}", c.norm_eps);

  if (c.n_kv_heads == 0) c.n_kv_heads = c.n_heads;
  if (c.n_heads % c.n_kv_heads != 0) {
    usage_error("model.n_heads ({}) must be a multiple of model.n_kv_heads ({})", c.n_heads,
                c.n_kv_heads);
  }
  if (c.head_dim == 0) {
    if (c.hidden_size % c.n_heads != 0) {
      usage_error(
          "model.hidden_size ({}) is not divisible by model.n_heads ({}); set model.head_dim",
          c.hidden_size, c.n_heads);
    }
    c.head_dim = c.hidden_size / c.n_heads;
  }
  if (c.intermediate_size == 0) {
    c.intermediate_size =
        gpt2 ? 4 * c.hidden_size : (8 * c.hidden_size + 3 * 64 - 1) / (3 * 64) * 64;
  }
  if (c.activation.empty() || c.activation == "auto") {
    c.activation = gpt2 ? "gelu_new" : c.arch == "gemma" ? "gelu_pytorch_tanh" : "silu";
  }
  if (!is_supported_activation(c.activation)) {
    usage_error("model.activation '{}' is not supported; expected auto, {}", c.activation,
                supported_activations());
  }
  if (c.rope_scaling.empty() || c.rope_scaling == "default") c.rope_scaling = "none";
  if (c.rope_scaling != "none" && c.rope_scaling != "linear" && c.rope_scaling != "llama3") {
    usage_error("model.rope_scaling '{}' is not supported; expected none, linear or llama3",
                c.rope_scaling);
  }

  auto reject = [&](bool bad, const char* what) {
    if (bad) usage_error("model.arch {} does not support {}", c.arch, what);
  };
  if (gpt2) {
    reject(c.n_kv_heads != c.n_heads, "n_kv_heads != n_heads (GPT-2 is multi-head only)");
    reject(c.head_dim * c.n_heads != c.hidden_size, "head_dim != hidden_size / n_heads");
    reject(c.qk_norm, "qk_norm");
    reject(c.rope_scaling != "none", "rope_scaling (it has learned positions)");
    c.attention_bias = true;  // GPT-2 has biases on every projection
    c.mlp_bias = true;
  } else {
    if (c.head_dim % 2 != 0)
      usage_error("model.head_dim must be even for RoPE, got {}", c.head_dim);
    if (c.arch == "qwen2") c.attention_bias = true;  // HF Qwen2 hard-codes q/k/v biases
    if (c.arch == "qwen3") c.qk_norm = true;         // and Qwen3 its q/k norms
    if (c.arch == "gemma") c.tie_embeddings = true;  // GemmaForCausalLM always ties
    // transformers reads a Gemma config's "gelu" as the tanh approximation, so the exact GELU
    // could not round-trip through config.json.
    reject(c.arch == "gemma" && c.activation == "gelu",
           "activation gelu (transformers reads Gemma's gelu as gelu_pytorch_tanh)");
    reject(c.qk_norm && c.arch != "qwen3", "qk_norm (only qwen3 has q/k norms)");
    reject(c.mlp_bias && c.arch != "llama", "mlp_bias (only llama has MLP biases)");
    reject(c.attention_bias && (c.arch == "mistral" || c.arch == "mixtral"), "attention_bias");
  }
  if (c.n_experts < 0) usage_error("model.n_experts must be >= 0, got {}", c.n_experts);
  if (c.router_aux_loss_coef < 0) {
    usage_error("model.router_aux_loss_coef must be >= 0, got {}", c.router_aux_loss_coef);
  }
  if (c.arch == "mixtral") {
    if (c.n_experts == 0) c.n_experts = 8;  // MixtralConfig's num_local_experts default
    if (c.n_experts_per_tok < 1 || c.n_experts_per_tok > c.n_experts) {
      usage_error("model.n_experts_per_tok must be in [1, n_experts = {}], got {}", c.n_experts,
                  c.n_experts_per_tok);
    }
  } else {
    reject(c.n_experts != 0, "n_experts (only mixtral has experts)");
  }
  return c;
}

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
