// GPT-2 (see gpt2.h). Semantics follow transformers' modeling_gpt2.py with scale_attn_weights
// on, no per-layer attention scaling and no upcast reordering (model_config_from_hf rejects
// configs that ask for those).
#include "reef/models/gpt2/gpt2.h"

#include <regex>

#include "reef/base/error.h"
#include "reef/nn/attention.h"
#include "reef/nn/init.h"

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

torch::Tensor GPT2BlockImpl::forward(const torch::Tensor& x, AttentionCache* cache, int64_t layer) {
  auto h = x + attn(ln_1(x), cache, layer);
  return h + mlp(ln_2(h));
}

GPT2ModelImpl::GPT2ModelImpl(const ModelConfig& cfg) {
  using torch::nn::Embedding;
  wte = register_module("wte", Embedding(embedding_options(cfg.vocab_size, cfg.hidden_size)));
  wpe = register_module("wpe", Embedding(embedding_options(cfg.max_seq_len, cfg.hidden_size)));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < cfg.n_layers; ++i) h->push_back(GPT2Block(cfg));
  ln_f = register_module("ln_f", LayerNorm(LayerNormOptions(cfg.hidden_size).eps(cfg.norm_eps)));
}

torch::Tensor GPT2ModelImpl::forward(const torch::Tensor& input_ids, AttentionCache* cache) {
  return forward_embeds(wte(input_ids), cache);
}

// One forward path: forward / forward_embeds and the pipeline pieces (embed, run_layers, then
// ln_f) all go through add_positions and run_range.
torch::Tensor GPT2ModelImpl::add_positions(const torch::Tensor& embeds, AttentionCache* cache) {
  const int64_t b = embeds.size(0), t = embeds.size(1);
  const int64_t max_pos = wpe->weight.size(0);
  auto positions =
      cache ? cache->positions(b, t, embeds.device())  // [B, T]
            : torch::arange(t, torch::TensorOptions().dtype(torch::kLong).device(embeds.device()));
  const int64_t end = cache && t > 0 ? positions.max().item<int64_t>() + 1 : t;
  if (end > max_pos) {
    fail("gpt2 sequence reaches position {} but the model has only {} positions (max_seq_len)", end,
         max_pos);
  }
  return embeds + wpe(positions);  // [B, T, C] + [T, C] or [B, T, C]
}

torch::Tensor GPT2ModelImpl::run_range(torch::Tensor x, int64_t begin, int64_t end,
                                       AttentionCache* cache) {
  for (int64_t i = begin; i < end; ++i) {
    auto run = [&](const torch::Tensor& in) {
      return h->at<GPT2BlockImpl>(static_cast<size_t>(i)).forward(in, cache, i);
    };
    x = layer_hook ? layer_hook(i, x, run) : run(x);
  }
  return x;
}

torch::Tensor GPT2ModelImpl::forward_embeds(const torch::Tensor& embeds, AttentionCache* cache) {
  return ln_f(run_range(add_positions(embeds, cache), 0, static_cast<int64_t>(h->size()), cache));
}

torch::Tensor GPT2ModelImpl::embed(const torch::Tensor& input_ids) {
  return add_positions(wte(input_ids), nullptr);
}

torch::Tensor GPT2ModelImpl::run_layers(torch::Tensor x, int64_t begin, int64_t end) {
  return run_range(std::move(x), begin, end, nullptr);
}

std::string gpt2_parameter_name(const std::string& tensor_name) {
  static const std::regex mask_buffer(R"((transformer\.)?h\.\d+\.attn\.(bias|masked_bias))");
  static const std::regex unprefixed(R"((wte|wpe|ln_f|h\.\d+)\..+)");
  if (std::regex_match(tensor_name, mask_buffer)) return "";
  if (std::regex_match(tensor_name, unprefixed)) return "transformer." + tensor_name;
  return tensor_name;
}

}  // namespace reef
