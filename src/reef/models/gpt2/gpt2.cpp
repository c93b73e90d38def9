// GPT-2 (see gpt2.h). Semantics follow transformers' modeling_gpt2.py with scale_attn_weights
// on, no per-layer attention scaling and no upcast reordering (model_config_from_hf rejects
// configs that ask for those).
#include "reef/models/gpt2/gpt2.h"

#include <regex>

#include "reef/base/error.h"
#include "reef/nn/attention.h"

namespace reef {

GPT2AttentionImpl::GPT2AttentionImpl(const ModelConfig& cfg)
    : n_heads_(cfg.n_heads), head_dim_(cfg.head_dim) {
  c_attn = register_module("c_attn", Conv1D(cfg.hidden_size, 3 * cfg.hidden_size));
  c_proj = register_module("c_proj", Conv1D(cfg.hidden_size, cfg.hidden_size));
}

torch::Tensor GPT2AttentionImpl::forward(const torch::Tensor& x, AttentionCache* cache,
                                         int64_t layer) {
  const int64_t b = x.size(0), t = x.size(1), c = x.size(2);
  auto qkv = c_attn(x).split(c, -1);  // 3 x [B, T, C]
  auto heads = [&](const torch::Tensor& y) {
    return y.view({b, t, n_heads_, head_dim_}).transpose(1, 2);  // [B, H, T, D]
  };
  auto y = attend(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), cache, layer);  // [B, H, T, D]
  return c_proj(y.transpose(1, 2).reshape({b, t, c}));
}

GPT2MLPImpl::GPT2MLPImpl(const ModelConfig& cfg) : activation_(cfg.activation) {
  c_fc = register_module("c_fc", Conv1D(cfg.hidden_size, cfg.intermediate_size));
  c_proj = register_module("c_proj", Conv1D(cfg.intermediate_size, cfg.hidden_size));
}

torch::Tensor GPT2MLPImpl::forward(const torch::Tensor& x) {
  return c_proj(activation(c_fc(x), activation_));
}

GPT2BlockImpl::GPT2BlockImpl(const ModelConfig& cfg) {
  ln_1 = register_module("ln_1", LayerNorm(LayerNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
  attn = register_module("attn", GPT2Attention(cfg));
  ln_2 = register_module("ln_2", LayerNorm(LayerNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
  mlp = register_module("mlp", GPT2MLP(cfg));
}

torch::Tensor GPT2BlockImpl::forward(const torch::Tensor& x, const LayerContext& ctx,
                                     int64_t layer) {
  auto h = x + attn(ln_1(x), ctx.positions.cache, layer);
  return h + mlp(ln_2(h));
}

GPT2ModelImpl::GPT2ModelImpl(const ModelConfig& cfg) {
  register_tokens("wte", Embedding(cfg.vocab_size, cfg.hidden_size));
  wpe = register_module("wpe", Embedding(cfg.max_seq_len, cfg.hidden_size));
  torch::nn::ModuleList blocks;
  for (int64_t i = 0; i < cfg.n_layers; ++i) blocks->push_back(GPT2Block(cfg));
  register_layers("h", blocks);
  ln_f = register_module("ln_f", LayerNorm(LayerNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
}

torch::Tensor GPT2ModelImpl::prepare(const torch::Tensor& embeds, const Positions& p) {
  const int64_t max_pos = wpe->weight.size(0);
  auto positions = p.ids();  // [B, T] or [T]
  const int64_t end = p.cache && p.length > 0 ? positions.max().item<int64_t>() + 1 : p.length;
  if (end > max_pos) {
    fail("gpt2 sequence reaches position {} but the model has only {} positions (max_seq_len)", end,
         max_pos);
  }
  return embeds + wpe(positions);  // [B, T, C] + [T, C] or [B, T, C]
}

std::vector<torch::Tensor> GPT2ModelImpl::embedding_weights() {
  std::vector<torch::Tensor> out;
  if (tokens()) out.push_back(tokens()->weight);
  if (wpe) out.push_back(wpe->weight);
  return out;
}

void GPT2ModelImpl::drop_positions() {
  unregister_module("wpe");
  wpe = nullptr;
}

void GPT2ModelImpl::drop_final_norm() {
  unregister_module("ln_f");
  ln_f = nullptr;
}

std::string gpt2_parameter_name(const std::string& tensor_name) {
  static const std::regex mask_buffer(R"((transformer\.)?h\.\d+\.attn\.(bias|masked_bias))");
  static const std::regex unprefixed(R"((wte|wpe|ln_f|h\.\d+)\..+)");
  if (std::regex_match(tensor_name, mask_buffer)) return "";
  if (std::regex_match(tensor_name, unprefixed)) return "transformer." + tensor_name;
  return tensor_name;
}

}  // namespace reef
