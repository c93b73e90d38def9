// The llama family's presets: a tiny one per arch for tests and smoke runs (a few hundred
// thousand to a few million parameters) and real models with the hyperparameters of their
// published Hugging Face config.json, so `model.preset=llama-3.2-1b` builds a model whose
// weights load from that checkpoint. Each preset sets dotted keys; config loading applies them
// (config/load.cpp), file and command-line keys after them.
#include "reef/models/llama/llama_family.h"

namespace reef {
namespace {

using Keys = PresetKeys;

// The llama family's common base: SwiGLU, RMSNorm, RoPE, no biases.
Keys llama_like(const std::string& arch, Keys extra) {
  Keys k = {
      {"model.arch", arch},        {"model.activation", "silu"}, {"model.attention_bias", "false"},
      {"model.mlp_bias", "false"}, {"model.qk_norm", "false"},   {"model.rope_scaling", "none"},
      {"model.head_dim", "0"},     {"model.init_std", "0.02"},   {"model.n_experts", "0"},
  };
  for (auto& [key, value] : extra) k[key] = value;
  return k;
}

}  // namespace

std::map<std::string, PresetKeys> llama_presets() {
  std::map<std::string, Keys> p;

  // ---- tiny: fast enough for unit tests on one CPU core; vocab 0 = the tokenizer's ----
  const Keys tiny = {
      {"model.vocab_size", "0"},
      {"model.hidden_size", "128"},
      {"model.intermediate_size", "384"},
      {"model.n_layers", "4"},
      {"model.n_heads", "4"},
      {"model.n_kv_heads", "2"},
      {"model.max_seq_len", "256"},
      {"model.norm_eps", "1e-5"},
      {"model.rope_theta", "10000"},
      {"model.tie_embeddings", "false"},
  };
  p["llama-tiny"] = llama_like("llama", tiny);
  Keys mistral = tiny;
  mistral["model.rope_theta"] = "1000000";
  p["mistral-tiny"] = llama_like("mistral", mistral);
  Keys qwen2 = tiny;
  qwen2["model.norm_eps"] = "1e-6";
  qwen2["model.rope_theta"] = "1000000";
  qwen2["model.tie_embeddings"] = "true";
  p["qwen2-tiny"] = llama_like("qwen2", qwen2);
  p["qwen2-tiny"]["model.attention_bias"] = "true";  // qwen2: biases on q/k/v
  Keys qwen3 = qwen2;
  qwen3["model.head_dim"] = "64";  // explicit and != hidden/heads (32), as in Qwen3
  p["qwen3-tiny"] = llama_like("qwen3", qwen3);
  p["qwen3-tiny"]["model.qk_norm"] = "true";
  // Mixtral: the llama-tiny block with 4 SwiGLU experts of half the width, 2 active per token.
  Keys mixtral = tiny;
  mixtral["model.intermediate_size"] = "192";
  mixtral["model.rope_theta"] = "1000000";
  mixtral["model.n_experts"] = "4";
  mixtral["model.n_experts_per_tok"] = "2";
  p["mixtral-tiny"] = llama_like("mixtral", mixtral);
  // Gemma: GeGLU, MQA, an explicit head_dim != hidden/heads, tied embeddings.
  Keys gemma = tiny;
  gemma["model.n_kv_heads"] = "1";
  gemma["model.head_dim"] = "64";
  gemma["model.norm_eps"] = "1e-6";
  gemma["model.tie_embeddings"] = "true";
  p["gemma-tiny"] = llama_like("gemma", gemma);
  p["gemma-tiny"]["model.activation"] = "gelu_pytorch_tanh";

  // ---- real models (values from each model's HF config.json) ----
  p["llama-3.2-1b"] = llama_like("llama", {
                                              {"model.vocab_size", "128256"},
                                              {"model.hidden_size", "2048"},
                                              {"model.intermediate_size", "8192"},
                                              {"model.n_layers", "16"},
                                              {"model.n_heads", "32"},
                                              {"model.n_kv_heads", "8"},
                                              {"model.head_dim", "64"},
                                              {"model.max_seq_len", "131072"},
                                              {"model.norm_eps", "1e-5"},
                                              {"model.rope_theta", "500000"},
                                              {"model.rope_scaling", "llama3"},
                                              {"model.rope_factor", "32"},
                                              {"model.rope_low_freq_factor", "1"},
                                              {"model.rope_high_freq_factor", "4"},
                                              {"model.rope_original_max_seq_len", "8192"},
                                              {"model.tie_embeddings", "true"},
                                          });
  p["llama-3.1-8b"] = llama_like("llama", {
                                              {"model.vocab_size", "128256"},
                                              {"model.hidden_size", "4096"},
                                              {"model.intermediate_size", "14336"},
                                              {"model.n_layers", "32"},
                                              {"model.n_heads", "32"},
                                              {"model.n_kv_heads", "8"},
                                              {"model.head_dim", "128"},
                                              {"model.max_seq_len", "131072"},
                                              {"model.norm_eps", "1e-5"},
                                              {"model.rope_theta", "500000"},
                                              {"model.rope_scaling", "llama3"},
                                              {"model.rope_factor", "8"},
                                              {"model.rope_low_freq_factor", "1"},
                                              {"model.rope_high_freq_factor", "4"},
                                              {"model.rope_original_max_seq_len", "8192"},
                                              {"model.tie_embeddings", "false"},
                                          });
  p["llama-2-7b"] = llama_like("llama", {
                                            {"model.vocab_size", "32000"},
                                            {"model.hidden_size", "4096"},
                                            {"model.intermediate_size", "11008"},
                                            {"model.n_layers", "32"},
                                            {"model.n_heads", "32"},
                                            {"model.n_kv_heads", "32"},
                                            {"model.max_seq_len", "4096"},
                                            {"model.norm_eps", "1e-5"},
                                            {"model.rope_theta", "10000"},
                                            {"model.tie_embeddings", "false"},
                                        });
  // Mistral-7B-v0.1 (its 4096-token sliding window is not a config key yet).
  p["mistral-7b"] = llama_like("mistral", {
                                              {"model.vocab_size", "32000"},
                                              {"model.hidden_size", "4096"},
                                              {"model.intermediate_size", "14336"},
                                              {"model.n_layers", "32"},
                                              {"model.n_heads", "32"},
                                              {"model.n_kv_heads", "8"},
                                              {"model.max_seq_len", "32768"},
                                              {"model.norm_eps", "1e-5"},
                                              {"model.rope_theta", "10000"},
                                              {"model.tie_embeddings", "false"},
                                          });
  p["qwen2.5-0.5b"] = llama_like("qwen2", {
                                              {"model.vocab_size", "151936"},
                                              {"model.hidden_size", "896"},
                                              {"model.intermediate_size", "4864"},
                                              {"model.n_layers", "24"},
                                              {"model.n_heads", "14"},
                                              {"model.n_kv_heads", "2"},
                                              {"model.max_seq_len", "32768"},
                                              {"model.norm_eps", "1e-6"},
                                              {"model.rope_theta", "1000000"},
                                              {"model.tie_embeddings", "true"},
                                              {"model.attention_bias", "true"},
                                          });
  p["qwen3-0.6b"] = llama_like("qwen3", {
                                            {"model.vocab_size", "151936"},
                                            {"model.hidden_size", "1024"},
                                            {"model.intermediate_size", "3072"},
                                            {"model.n_layers", "28"},
                                            {"model.n_heads", "16"},
                                            {"model.n_kv_heads", "8"},
                                            {"model.head_dim", "128"},
                                            {"model.max_seq_len", "40960"},
                                            {"model.norm_eps", "1e-6"},
                                            {"model.rope_theta", "1000000"},
                                            {"model.tie_embeddings", "true"},
                                            {"model.qk_norm", "true"},
                                        });
  // HuggingFaceTB/SmolLM-135M (v1): a llama with 9 heads of 64 and 3 KV heads.
  p["smollm-135m"] = llama_like("llama", {
                                             {"model.vocab_size", "49152"},
                                             {"model.hidden_size", "576"},
                                             {"model.intermediate_size", "1536"},
                                             {"model.n_layers", "30"},
                                             {"model.n_heads", "9"},
                                             {"model.n_kv_heads", "3"},
                                             {"model.max_seq_len", "2048"},
                                             {"model.norm_eps", "1e-5"},
                                             {"model.rope_theta", "10000"},
                                             {"model.tie_embeddings", "true"},
                                         });
  p["tinyllama-1.1b"] = llama_like("llama", {
                                                {"model.vocab_size", "32000"},
                                                {"model.hidden_size", "2048"},
                                                {"model.intermediate_size", "5632"},
                                                {"model.n_layers", "22"},
                                                {"model.n_heads", "32"},
                                                {"model.n_kv_heads", "4"},
                                                {"model.max_seq_len", "2048"},
                                                {"model.norm_eps", "1e-5"},
                                                {"model.rope_theta", "10000"},
                                                {"model.tie_embeddings", "false"},
                                            });
  // mistralai/Mixtral-8x7B-v0.1.
  p["mixtral-8x7b"] = llama_like("mixtral", {
                                                {"model.vocab_size", "32000"},
                                                {"model.hidden_size", "4096"},
                                                {"model.intermediate_size", "14336"},
                                                {"model.n_layers", "32"},
                                                {"model.n_heads", "32"},
                                                {"model.n_kv_heads", "8"},
                                                {"model.max_seq_len", "32768"},
                                                {"model.norm_eps", "1e-5"},
                                                {"model.rope_theta", "1000000"},
                                                {"model.tie_embeddings", "false"},
                                                {"model.n_experts", "8"},
                                                {"model.n_experts_per_tok", "2"},
                                            });
  // google/gemma-2b (the first Gemma).
  p["gemma-2b"] = llama_like("gemma", {
                                          {"model.vocab_size", "256000"},
                                          {"model.hidden_size", "2048"},
                                          {"model.intermediate_size", "16384"},
                                          {"model.n_layers", "18"},
                                          {"model.n_heads", "8"},
                                          {"model.n_kv_heads", "1"},
                                          {"model.head_dim", "256"},
                                          {"model.max_seq_len", "8192"},
                                          {"model.norm_eps", "1e-6"},
                                          {"model.rope_theta", "10000"},
                                          {"model.tie_embeddings", "true"},
                                          {"model.activation", "gelu_pytorch_tanh"},
                                      });
  return p;
}

}  // namespace reef
