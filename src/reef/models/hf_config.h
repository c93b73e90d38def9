// Hugging Face config.json <-> ModelConfig, so a Reef checkpoint folder is a Hugging Face model
// folder and HF models load without a conversion step.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "reef/config/config.h"

namespace reef {

// config.json for `cfg` (resolved first): model_type, architectures, torch_dtype float32 and
// every field transformers needs to rebuild the same network (rope_theta and rope_scaling in the
// classic layout that transformers 4.x and 5.x both read, head_dim, biases, tie_word_embeddings,
// dropouts 0). bos/eos token ids are left out (ModelConfig does not know them).
nlohmann::json hf_config_json(const ModelConfig& cfg);

// The inverse: a resolved ModelConfig from an HF config.json (either the classic
// rope_theta/rope_scaling layout or transformers 5's rope_parameters). Throws reef::Error(kUsage)
// naming `where` (usually the file path) for an unsupported model_type or `architectures` class
// (listing the supported ones), a missing or mistyped field, or a feature Reef does not implement
// (other RoPE types, partial rotary, cross-attention, per-layer attention scaling). A sliding
// window shorter than max_position_embeddings caps max_seq_len at the window (with a warning),
// within which the model is exact.
ModelConfig model_config_from_hf(const nlohmann::json& j, const std::string& where);

// The parameter name (of CausalLM built from `cfg`) that checkpoint tensor `tensor_name` fills,
// or "" for a known non-parameter buffer to skip. Normalises the spellings the Hub ships that
// differ from transformers' *ForCausalLM state_dict (gpt2: see gpt2_parameter_name); other
// names come back unchanged. Used by checkpoint loading before its strict checks.
std::string hf_parameter_name(const ModelConfig& cfg, const std::string& tensor_name);

}  // namespace reef
