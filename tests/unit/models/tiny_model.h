// A tiny model of any supported arch for the models/ unit tests: hidden 16, 2 layers, 4 query
// heads (2 key/value heads but for gpt2), intermediate 24, 32 positions; mixtral with 4 experts.
#pragma once

#include <string>

#include "reef/config/config.h"

namespace reef::testing {

inline ModelConfig tiny_model(const std::string& arch, int64_t vocab_size = 40) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = vocab_size;
  c.hidden_size = 16;
  c.intermediate_size = 24;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = arch == "gpt2" ? 0 : 2;
  c.max_seq_len = 32;
  c.activation = "auto";
  if (arch == "mixtral") c.n_experts = 4;
  return c;
}

}  // namespace reef::testing
