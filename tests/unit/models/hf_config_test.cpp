// HF config.json mapping: round trips for every architecture and RoPE scaling, both RoPE layouts
// transformers writes, per-architecture defaults, and errors that name the file.
#include "reef/models/hf_config.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/models/causal_lm.h"

namespace reef {
namespace {

using nlohmann::json;

void expect_same(const ModelConfig& a, const ModelConfig& b) {
  EXPECT_EQ(a.arch, b.arch);
  EXPECT_EQ(a.vocab_size, b.vocab_size);
  EXPECT_EQ(a.hidden_size, b.hidden_size);
  EXPECT_EQ(a.intermediate_size, b.intermediate_size);
  EXPECT_EQ(a.n_layers, b.n_layers);
  EXPECT_EQ(a.n_heads, b.n_heads);
  EXPECT_EQ(a.n_kv_heads, b.n_kv_heads);
  EXPECT_EQ(a.head_dim, b.head_dim);
  EXPECT_EQ(a.max_seq_len, b.max_seq_len);
  EXPECT_DOUBLE_EQ(a.norm_eps, b.norm_eps);
  EXPECT_EQ(a.attention_bias, b.attention_bias);
  EXPECT_EQ(a.mlp_bias, b.mlp_bias);
  EXPECT_EQ(a.qk_norm, b.qk_norm);
  EXPECT_EQ(a.tie_embeddings, b.tie_embeddings);
  EXPECT_EQ(a.activation, b.activation);
  EXPECT_DOUBLE_EQ(a.init_std, b.init_std);
  EXPECT_EQ(a.n_experts, b.n_experts);
  if (a.n_experts > 0) {
    EXPECT_EQ(a.n_experts_per_tok, b.n_experts_per_tok);
    EXPECT_DOUBLE_EQ(a.router_aux_loss_coef, b.router_aux_loss_coef);
    EXPECT_EQ(a.output_router_logits, b.output_router_logits);
  }
  if (a.arch != "gpt2") {  // RoPE fields mean nothing for gpt2
    EXPECT_DOUBLE_EQ(a.rope_theta, b.rope_theta);
    EXPECT_EQ(a.rope_scaling, b.rope_scaling);
    if (a.rope_scaling != "none") {
      EXPECT_DOUBLE_EQ(a.rope_factor, b.rope_factor);
    }
    if (a.rope_scaling == "llama3") {
      EXPECT_DOUBLE_EQ(a.rope_low_freq_factor, b.rope_low_freq_factor);
      EXPECT_DOUBLE_EQ(a.rope_high_freq_factor, b.rope_high_freq_factor);
      EXPECT_EQ(a.rope_original_max_seq_len, b.rope_original_max_seq_len);
    }
  }
}

ModelConfig sample(const std::string& arch) {
  ModelConfig c;
  c.arch = arch;
  c.vocab_size = 320;
  c.hidden_size = 64;
  c.n_layers = 3;
  c.n_heads = 8;
  c.n_kv_heads = arch == "gpt2" ? 0 : 2;
  c.max_seq_len = 512;
  c.norm_eps = 1e-6;
  c.rope_theta = 500000.0;
  c.init_std = 0.01;
  c.activation = "auto";
  return c;
}

TEST(HfConfig, RoundTripsEveryArch) {
  std::vector<ModelConfig> cases;
  for (const auto& arch : supported_archs()) cases.push_back(sample(arch));
  auto llama3 = sample("llama");
  llama3.rope_scaling = "llama3";
  llama3.rope_factor = 32;
  llama3.rope_low_freq_factor = 1;
  llama3.rope_high_freq_factor = 4;
  llama3.rope_original_max_seq_len = 8192;
  llama3.tie_embeddings = true;
  cases.push_back(llama3);
  auto linear = sample("mistral");
  linear.rope_scaling = "linear";
  linear.rope_factor = 2;
  linear.head_dim = 16;  // explicit, != hidden/heads
  cases.push_back(linear);
  auto biased = sample("llama");
  biased.attention_bias = biased.mlp_bias = true;
  cases.push_back(biased);
  auto qwen3 = sample("qwen3");
  qwen3.attention_bias = true;
  qwen3.head_dim = 32;
  cases.push_back(qwen3);
  auto gpt2 = sample("gpt2");
  gpt2.tie_embeddings = true;
  gpt2.activation = "gelu";
  cases.push_back(gpt2);
  auto mixtral = sample("mixtral");
  mixtral.n_experts = 6;
  mixtral.n_experts_per_tok = 3;
  mixtral.router_aux_loss_coef = 0.05;
  mixtral.output_router_logits = true;
  cases.push_back(mixtral);
  auto gemma = sample("gemma");
  gemma.head_dim = 32;
  gemma.attention_bias = true;
  cases.push_back(gemma);

  for (const auto& c : cases) {
    SCOPED_TRACE(c.arch + " rope_scaling=" + c.rope_scaling);
    auto j = hf_config_json(c);
    EXPECT_EQ(j["model_type"], c.arch);
    EXPECT_EQ(j["torch_dtype"], "float32");
    EXPECT_FALSE(j.contains("bos_token_id"));
    // Through text, as it goes through a file.
    auto back = model_config_from_hf(json::parse(j.dump(2)), "config.json");
    expect_same(back, resolve_model_config(c));
  }
}

// A sequence classifier (reward model): *ForSequenceClassification with id2label and the pad id,
// read back as such; its score head replaces the LM head and is never tied.
TEST(HfConfig, SequenceClassifiersRoundTrip) {
  for (const std::string arch : {"llama", "qwen2", "gemma", "gpt2"}) {
    SCOPED_TRACE(arch);
    ModelConfig c;
    c.arch = arch;
    c.vocab_size = 64;
    c.hidden_size = 32;
    c.n_layers = 2;
    c.n_heads = 4;
    c.tie_embeddings = true;
    c.num_labels = 1;
    c.pad_token_id = 3;
    const json j = hf_config_json(c);
    const std::string cls = j["architectures"][0].get<std::string>();
    EXPECT_TRUE(cls.size() > 25 && cls.substr(cls.size() - 25) == "ForSequenceClassification")
        << cls;
    EXPECT_EQ(j["id2label"], json({{"0", "LABEL_0"}}));
    EXPECT_EQ(j["pad_token_id"], 3);
    const ModelConfig back = model_config_from_hf(j, "config.json");
    EXPECT_EQ(back.num_labels, 1);
    EXPECT_EQ(back.pad_token_id, 3);
    CausalLM m(back);
    EXPECT_EQ(m->head_name(), "score");
    EXPECT_EQ(m->lm_head_weight().sizes(), torch::IntArrayRef({1, 32}));
    EXPECT_EQ(count_parameters(back), [&] {
      int64_t n = 0;
      for (const auto& p : m->parameters()) n += p.numel();
      return n;
    }());
    EXPECT_EQ(m->forward(torch::zeros({2, 5}, torch::kLong)).sizes(),
              torch::IntArrayRef({2, 5, 1}));
  }
  // transformers' num_labels rule: id2label's size, and a language model has none.
  json j = hf_config_json([] {
    ModelConfig c;
    c.vocab_size = 64;
    return c;
  }());
  EXPECT_EQ(model_config_from_hf(j, "config.json").num_labels, 0);
  j["architectures"] = json::array({"LlamaForSequenceClassification"});
  j["id2label"] = {{"0", "bad"}, {"1", "good"}, {"2", "ugly"}};
  EXPECT_EQ(model_config_from_hf(j, "config.json").num_labels, 3);
}

TEST(HfConfig, FieldNamesTransformersReads) {
  auto l = hf_config_json(sample("llama"));
  EXPECT_EQ(l["architectures"], json::array({"LlamaForCausalLM"}));
  EXPECT_EQ(l["num_hidden_layers"], 3);
  EXPECT_EQ(l["num_key_value_heads"], 2);
  EXPECT_EQ(l["head_dim"], 8);
  EXPECT_EQ(l["intermediate_size"], 192);
  EXPECT_EQ(l["hidden_act"], "silu");
  EXPECT_EQ(l["rms_norm_eps"], 1e-6);
  EXPECT_EQ(l["rope_theta"], 500000.0);
  EXPECT_TRUE(l["rope_scaling"].is_null());
  EXPECT_EQ(l["tie_word_embeddings"], false);

  auto s = sample("llama");
  s.rope_scaling = "llama3";
  s.rope_factor = 8;
  auto rs = hf_config_json(s)["rope_scaling"];
  EXPECT_EQ(rs["rope_type"], "llama3");
  EXPECT_EQ(rs["factor"], 8.0);
  EXPECT_EQ(rs["original_max_position_embeddings"], 8192);

  auto g = hf_config_json(sample("gpt2"));
  EXPECT_EQ(g["architectures"], json::array({"GPT2LMHeadModel"}));
  EXPECT_EQ(g["n_embd"], 64);
  EXPECT_EQ(g["n_layer"], 3);
  EXPECT_EQ(g["n_head"], 8);
  EXPECT_EQ(g["n_inner"], 256);
  EXPECT_EQ(g["n_positions"], 512);
  EXPECT_EQ(g["activation_function"], "gelu_new");
  EXPECT_EQ(g["resid_pdrop"], 0.0);
  EXPECT_EQ(hf_config_json(sample("qwen2"))["architectures"], json::array({"Qwen2ForCausalLM"}));
  EXPECT_EQ(hf_config_json(sample("qwen3"))["architectures"], json::array({"Qwen3ForCausalLM"}));
  EXPECT_EQ(hf_config_json(sample("mistral"))["architectures"],
            json::array({"MistralForCausalLM"}));
}

json llama31_like() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 128256,
    "hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16,
    "num_attention_heads": 32, "num_key_value_heads": 8, "max_position_embeddings": 131072,
    "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "hidden_act": "silu",
    "rope_scaling": {"factor": 32.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                     "original_max_position_embeddings": 8192, "rope_type": "llama3"},
    "tie_word_embeddings": true, "torch_dtype": "bfloat16", "bos_token_id": 128000})");
}

TEST(HfConfig, ReadsLlama32) {
  auto c = model_config_from_hf(llama31_like(), "Llama-3.2-1B/config.json");
  EXPECT_EQ(c.arch, "llama");
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.n_kv_heads, 8);
  EXPECT_EQ(c.rope_scaling, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_factor, 32.0);
  EXPECT_EQ(c.rope_original_max_seq_len, 8192);
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.max_seq_len, 131072);
}

TEST(HfConfig, ReadsTransformers5RopeParameters) {
  auto j = llama31_like();
  j.erase("rope_scaling");
  j.erase("rope_theta");
  j["rope_parameters"] = json::parse(R"({"rope_type": "llama3", "rope_theta": 500000.0,
      "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
      "original_max_position_embeddings": 8192})");
  auto c = model_config_from_hf(j, "config.json");
  EXPECT_EQ(c.rope_scaling, "llama3");
  EXPECT_DOUBLE_EQ(c.rope_theta, 500000.0);
  EXPECT_DOUBLE_EQ(c.rope_factor, 8.0);

  j["rope_parameters"] = json::parse(R"({"rope_type": "default", "rope_theta": 1000000.0})");
  c = model_config_from_hf(j, "config.json");
  EXPECT_EQ(c.rope_scaling, "none");
  EXPECT_DOUBLE_EQ(c.rope_theta, 1000000.0);
}

TEST(HfConfig, ArchDefaults) {
  auto j = json::parse(R"({"model_type": "qwen3", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4})");
  auto c = model_config_from_hf(j, "q3.json");
  EXPECT_EQ(c.head_dim, 128);  // Qwen3Config's default
  EXPECT_TRUE(c.qk_norm);
  EXPECT_FALSE(c.attention_bias);
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);

  j["model_type"] = "qwen2";
  c = model_config_from_hf(j, "q2.json");
  EXPECT_EQ(c.head_dim, 16);
  EXPECT_TRUE(c.attention_bias);
  EXPECT_FALSE(c.qk_norm);

  auto g = json::parse(R"({"model_type": "gpt2", "vocab_size": 100, "n_embd": 32, "n_layer": 2,
      "n_head": 4})");
  c = model_config_from_hf(g, "gpt2.json");
  EXPECT_EQ(c.max_seq_len, 1024);
  EXPECT_EQ(c.intermediate_size, 128);
  EXPECT_EQ(c.activation, "gelu_new");
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
}

void expect_error(const json& j, const std::vector<std::string>& needles);  // below

TEST(HfConfig, MixtralAndGemmaDefaults) {
  auto j = json::parse(R"({"model_type": "mixtral", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4})");
  auto c = model_config_from_hf(j, "mx.json");
  EXPECT_EQ(c.n_experts, 8);  // MixtralConfig's defaults
  EXPECT_EQ(c.n_experts_per_tok, 2);
  EXPECT_DOUBLE_EQ(c.router_aux_loss_coef, 0.001);
  EXPECT_FALSE(c.output_router_logits);
  EXPECT_DOUBLE_EQ(c.rope_theta, 1e6);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-5);
  EXPECT_EQ(c.max_seq_len, 131072);
  EXPECT_EQ(c.activation, "silu");
  auto written = hf_config_json(c);
  EXPECT_EQ(written["architectures"][0], "MixtralForCausalLM");
  EXPECT_EQ(written["num_local_experts"], 8);
  EXPECT_EQ(written["num_experts_per_tok"], 2);
  EXPECT_EQ(written["router_jitter_noise"], 0.0);
  EXPECT_FALSE(written.contains("attention_bias"));

  auto g = json::parse(R"({"model_type": "gemma", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "hidden_act": "gelu"})");
  c = model_config_from_hf(g, "g.json");
  EXPECT_EQ(c.head_dim, 256);                    // GemmaConfig's default
  EXPECT_EQ(c.activation, "gelu_pytorch_tanh");  // the original releases' "gelu" means tanh
  EXPECT_TRUE(c.tie_embeddings);
  EXPECT_EQ(c.max_seq_len, 8192);
  EXPECT_DOUBLE_EQ(c.norm_eps, 1e-6);
  EXPECT_DOUBLE_EQ(c.rope_theta, 10000.0);
  g["hidden_activation"] = "gelu_pytorch_tanh";  // as the Hub's gemma configs also carry
  EXPECT_EQ(model_config_from_hf(g, "g.json").activation, "gelu_pytorch_tanh");
  written = hf_config_json(c);
  EXPECT_EQ(written["architectures"][0], "GemmaForCausalLM");
  EXPECT_EQ(written["hidden_act"], "gelu_pytorch_tanh");
  EXPECT_EQ(written["hidden_activation"], "gelu_pytorch_tanh");
  EXPECT_EQ(written["tie_word_embeddings"], true);
}

TEST(HfConfig, MixtralAndGemmaErrors) {
  auto mx = json::parse(R"({"model_type": "mixtral", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_local_experts": 4, "num_experts_per_tok": 2})");
  auto j = mx;
  j["router_jitter_noise"] = 0.01;
  expect_error(j, {"/models/x/config.json", "router_jitter_noise", "only 0"});
  j = mx;
  j["num_experts_per_tok"] = 5;
  expect_error(j, {"/models/x/config.json", "num_experts_per_tok"});
  auto g = json::parse(R"({"model_type": "gemma", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4})");
  j = g;
  j["tie_word_embeddings"] = false;
  expect_error(j, {"/models/x/config.json", "tie_word_embeddings"});
  j = g;
  j["hidden_act"] = "gelu_pytorch_tanh";
  j["hidden_activation"] = "silu";
  expect_error(j, {"hidden_act", "hidden_activation", "disagree"});
  j = g;
  j["use_bidirectional_attention"] = true;
  expect_error(j, {"use_bidirectional_attention"});
  for (const char* later : {"gemma2", "gemma3", "gemma3_text"}) {
    j = g;
    j["model_type"] = later;
    expect_error(
        j, {std::string("'") + later + "'", "llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2"});
  }
}

TEST(HfConfig, SlidingWindowCapsMaxSeqLen) {
  auto j = json::parse(R"({"model_type": "mistral", "vocab_size": 100, "hidden_size": 64,
      "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
      "num_key_value_heads": 2, "max_position_embeddings": 32768, "sliding_window": 4096})");
  EXPECT_EQ(model_config_from_hf(j, "m.json").max_seq_len, 4096);
  j["sliding_window"] = nullptr;
  EXPECT_EQ(model_config_from_hf(j, "m.json").max_seq_len, 32768);
  j["model_type"] = "mixtral";  // as mistral
  j["sliding_window"] = 4096;
  EXPECT_EQ(model_config_from_hf(j, "m.json").max_seq_len, 4096);
}

void expect_error(const json& j, const std::vector<std::string>& needles) {
  try {
    model_config_from_hf(j, "/models/x/config.json");
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    const std::string msg = e.what();
    for (const auto& n : needles) EXPECT_NE(msg.find(n), std::string::npos) << msg;
  }
}

TEST(HfConfig, Errors) {
  expect_error(
      json::parse(R"({"model_type": "bert", "vocab_size": 10})"),
      {"/models/x/config.json", "'bert'", "llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2"});
  expect_error(json::parse(R"({"vocab_size": 10})"),
               {"/models/x/config.json", "model_type",
                "llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2"});
  auto j = llama31_like();
  j.erase("hidden_size");
  expect_error(j, {"/models/x/config.json", "hidden_size"});
  j = llama31_like();
  j["rope_scaling"] = json::parse(R"({"rope_type": "yarn", "factor": 4.0})");
  expect_error(j, {"/models/x/config.json", "yarn", "default, linear, llama3"});
  j = llama31_like();
  j["num_attention_heads"] = "32";
  expect_error(j, {"num_attention_heads", "integer"});
  j = llama31_like();
  j["hidden_act"] = "tanh";
  expect_error(j, {"hidden_act", "tanh"});
  j = llama31_like();
  j["num_key_value_heads"] = 5;
  expect_error(j, {"/models/x/config.json", "n_kv_heads"});
  expect_error(json::parse(R"({"model_type": "gpt2", "vocab_size": 100, "n_embd": 32,
      "n_layer": 2, "n_head": 4, "scale_attn_by_inverse_layer_idx": true})"),
               {"scale_attn_by_inverse_layer_idx"});
  expect_error(json::array(), {"/models/x/config.json"});
  j = llama31_like();
  j["architectures"] = json::array({"LlamaForTokenClassification"});
  expect_error(j, {"/models/x/config.json", "LlamaForTokenClassification", "LlamaForCausalLM",
                   "GPT2LMHeadModel", "ForSequenceClassification"});
  j = llama31_like();
  j["architectures"] = json::array({"GPT2LMHeadModel"});  // class of another model_type
  expect_error(j, {"GPT2LMHeadModel", "'llama'"});
}

TEST(HfConfig, ParameterNamesOfHubCheckpoints) {
  ModelConfig gpt2 = sample("gpt2");
  gpt2.arch = "gpt2";
  EXPECT_EQ(hf_parameter_name(gpt2, "h.0.attn.c_attn.weight"),
            "transformer.h.0.attn.c_attn.weight");
  EXPECT_EQ(hf_parameter_name(gpt2, "wte.weight"), "transformer.wte.weight");
  EXPECT_EQ(hf_parameter_name(gpt2, "ln_f.bias"), "transformer.ln_f.bias");
  EXPECT_EQ(hf_parameter_name(gpt2, "transformer.wpe.weight"), "transformer.wpe.weight");
  EXPECT_EQ(hf_parameter_name(gpt2, "lm_head.weight"), "lm_head.weight");
  EXPECT_EQ(hf_parameter_name(gpt2, "h.11.attn.bias"), "");
  EXPECT_EQ(hf_parameter_name(gpt2, "transformer.h.3.attn.masked_bias"), "");
  EXPECT_EQ(hf_parameter_name(gpt2, "h.0.attn.c_attn.bias"), "transformer.h.0.attn.c_attn.bias");
  EXPECT_EQ(hf_parameter_name(gpt2, "h.0.attn.other"), "transformer.h.0.attn.other");
  EXPECT_EQ(hf_parameter_name(gpt2, "score.weight"), "score.weight");
  ModelConfig llama = sample("llama");
  EXPECT_EQ(hf_parameter_name(llama, "h.0.attn.bias"), "h.0.attn.bias");
  EXPECT_EQ(hf_parameter_name(llama, "model.norm.weight"), "model.norm.weight");
  ModelConfig mixtral = sample("mixtral");
  EXPECT_EQ(hf_parameter_name(mixtral, "model.layers.1.block_sparse_moe.experts.3.w2.weight"),
            "model.layers.1.block_sparse_moe.experts.3.w2.weight");
  // transformers 5's in-memory fused layout is refused with a message, not as unknown tensors.
  EXPECT_THROW(hf_parameter_name(mixtral, "model.layers.0.mlp.experts.gate_up_proj"), Error);
  EXPECT_THROW(hf_parameter_name(mixtral, "model.layers.0.mlp.gate.weight"), Error);
}

}  // namespace
}  // namespace reef
