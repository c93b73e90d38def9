// The gpt2 family's Hugging Face config.json mapping (transformers' configuration_gpt2.py).
#include "reef/base/error.h"
#include "reef/models/gpt2/gpt2.h"
#include "reef/models/gpt2/gpt2_family.h"

namespace reef {

using nlohmann::json;

std::vector<std::string> gpt2_hf_classes(const std::string&) {
  // GPT2Model's keys are the ones the Hub's gpt2 checkpoints use.
  return {"GPT2LMHeadModel", "GPT2Model"};
}

ModelConfig gpt2_from_hf(const HfReader& r, const std::string&) {
  ModelConfig c;
  c.arch = "gpt2";
  c.vocab_size = r.integer("vocab_size");
  c.hidden_size = r.integer("n_embd");
  c.n_layers = r.integer("n_layer");
  c.n_heads = r.integer("n_head");
  c.intermediate_size = r.integer("n_inner", 0);
  c.max_seq_len = r.integer("n_positions", r.integer("n_ctx", 1024));
  c.activation = r.string("activation_function", "gelu_new");
  check_activation(r, "activation_function", c.activation);
  c.norm_eps = r.number("layer_norm_epsilon", 1e-5);
  c.init_std = r.number("initializer_range", 0.02);
  c.tie_embeddings = r.boolean("tie_word_embeddings", true);
  if (!r.boolean("scale_attn_weights", true)) {
    usage_error("{}: scale_attn_weights=false is not supported", r.where());
  }
  if (r.boolean("scale_attn_by_inverse_layer_idx", false)) {
    usage_error("{}: scale_attn_by_inverse_layer_idx=true is not supported", r.where());
  }
  if (r.boolean("add_cross_attention", false)) {
    usage_error("{}: add_cross_attention=true is not supported (decoder-only models)", r.where());
  }
  // reorder_and_upcast_attn only changes fp16 rounding, not the function; accepted.
  return c;
}

void gpt2_to_hf(const ModelConfig& c, json& j) {
  j["n_embd"] = c.hidden_size;
  j["n_layer"] = c.n_layers;
  j["n_head"] = c.n_heads;
  j["n_inner"] = c.intermediate_size;
  j["n_positions"] = c.max_seq_len;
  j["n_ctx"] = c.max_seq_len;  // older readers (and llama.cpp's converter) look here
  j["activation_function"] = c.activation;
  j["layer_norm_epsilon"] = c.norm_eps;
  j["scale_attn_weights"] = true;
  j["scale_attn_by_inverse_layer_idx"] = false;
  j["reorder_and_upcast_attn"] = false;
  j["resid_pdrop"] = 0.0;
  j["embd_pdrop"] = 0.0;
  j["attn_pdrop"] = 0.0;
}

std::string gpt2_hf_parameter_name_of(const ModelConfig&, const std::string& tensor_name) {
  return gpt2_parameter_name(tensor_name);
}

}  // namespace reef
