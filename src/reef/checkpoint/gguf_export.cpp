// GGUF export: per-architecture metadata, the tensor names from each family's map
// (models/<family>/), the tokenizer section from
// tokenizer.json, the llama q/k permutation, and Mixtral's experts stacked per layer into
// ffn_{gate,up,down}_exps as llama.cpp's converter writes them (see gguf_export.h).
#include "reef/checkpoint/gguf_export.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/log.h"
#include "reef/checkpoint/gguf_kquants.h"
#include "reef/checkpoint/model_io.h"
#include "reef/models/causal_lm.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {
namespace {

// The type a 2-D weight with rows of `cols` values gets: block types need whole blocks along a
// row; K-quants (256) fall back to q8_0, then f16, and q8_0/q4_0 (32) to f16.
GgmlType row_type(GgmlType t, int64_t cols) {
  if ((t == GgmlType::kQ4_K || t == GgmlType::kQ6_K) && cols % kQKK != 0) t = GgmlType::kQ8_0;
  if ((t == GgmlType::kQ8_0 || t == GgmlType::kQ4_0) && cols % kQ8BlockSize != 0)
    t = GgmlType::kF16;
  return t;
}

// Tensors llama.cpp keeps in f32 whatever the file type (its converter and its quantizer agree):
// MoE routers and learned position embeddings.
bool always_f32(const std::string& gguf_name) {
  auto ends = [&](const std::string& s) {
    return gguf_name.size() >= s.size() &&
           gguf_name.compare(gguf_name.size() - s.size(), s.size(), s) == 0;
  };
  return ends("ffn_gate_inp.weight") || gguf_name == "position_embd.weight";
}

using nlohmann::json;

// llama.cpp's token types (llama_token_type).
enum TokenType : int32_t {
  kNormal = 1,
  kUnknown = 2,
  kControl = 3,
  kUserDefined = 4,
  kUnused = 5,
  kByte = 6
};

// llama.cpp's architecture for a Reef arch (the family's: mistral and mixtral run as llama).
std::string gguf_arch(const std::string& arch) { return model_family(arch).gguf_arch(arch); }

// Mixtral expert weight -> (layer, expert, "w1"/"w2"/"w3"); false for other names.
bool parse_expert(const std::string& hf, int64_t* layer, int64_t* expert, std::string* w) {
  static const std::string pre = "model.layers.", mid = ".block_sparse_moe.experts.";
  if (hf.rfind(pre, 0) != 0) return false;
  const size_t m = hf.find(mid, pre.size());
  if (m == std::string::npos) return false;
  const size_t dot = hf.find('.', m + mid.size());
  if (dot == std::string::npos || hf.compare(dot, std::string::npos, ".w1.weight") != 0 &&
                                      hf.compare(dot, std::string::npos, ".w2.weight") != 0 &&
                                      hf.compare(dot, std::string::npos, ".w3.weight") != 0)
    return false;
  *layer = std::stoll(hf.substr(pre.size(), m - pre.size()));
  *expert = std::stoll(hf.substr(m + mid.size(), dot - m - mid.size()));
  *w = hf.substr(dot + 1, 2);
  return true;
}

// HF's rotate-half q/k rows -> ggml's interleaved pairs, per head: rows (h, 2, d/2) are read as
// (h, d/2, 2). Works for weights [rows, in] and biases [rows].
torch::Tensor permute_qk(const torch::Tensor& w, int64_t n_heads) {
  std::vector<int64_t> shape = {n_heads, 2, w.size(0) / n_heads / 2};
  for (int64_t i = 1; i < w.dim(); ++i) shape.push_back(w.size(i));
  return w.reshape(shape).transpose(1, 2).reshape(w.sizes());
}

// llama3 RoPE scaling as llama.cpp applies it: per frequency pair a divisor, stored as the
// f32 tensor rope_freqs.weight [head_dim / 2].
torch::Tensor llama3_rope_factors(const ModelConfig& c) {
  const double pi = 3.14159265358979323846;
  const double low_wavelen = c.rope_original_max_seq_len / c.rope_low_freq_factor;
  const double high_wavelen = c.rope_original_max_seq_len / c.rope_high_freq_factor;
  std::vector<float> f;
  for (int64_t i = 0; i < c.head_dim; i += 2) {
    const double freq = 1.0 / std::pow(c.rope_theta, static_cast<double>(i) / c.head_dim);
    const double wavelen = 2 * pi / freq;
    if (wavelen < high_wavelen) {
      f.push_back(1.0f);
    } else if (wavelen > low_wavelen) {
      f.push_back(static_cast<float>(c.rope_factor));
    } else {
      const double smooth = (c.rope_original_max_seq_len / wavelen - c.rope_low_freq_factor) /
                            (c.rope_high_freq_factor - c.rope_low_freq_factor);
      f.push_back(static_cast<float>(1.0 / ((1 - smooth) / c.rope_factor + smooth)));
    }
  }
  return torch::tensor(f, torch::kFloat32);
}

bool has_type(const json& node, const std::string& type) {
  if (!node.is_object()) return false;
  if (node.value("type", "") == type) return true;
  for (const char* list : {"pretokenizers", "normalizers", "decoders"}) {
    if (node.contains(list) && node[list].is_array()) {
      for (const auto& n : node[list]) {
        if (has_type(n, type)) return true;
      }
    }
  }
  return false;
}

// The tokenizer.* keys from <dir>/tokenizer.json (+ tokenizer_config.json), padded with
// "[PADi]" (unused) entries up to the model's vocab_size.

// What Reef's prompt encoding (encode_prompt: the tokenizer's post-processor) adds around a
// text: {BOS first, EOS last}. Found by encoding a probe with and without special tokens.
std::pair<bool, bool> post_processor_adds(const Tokenizer& tok) {
  const std::string probe = "Hello world";
  const std::vector<int32_t> plain = tok.encode(probe), with = encode_prompt(tok, probe);
  if (with.size() <= plain.size()) return {false, false};
  for (size_t at = 0; at + plain.size() <= with.size(); ++at) {
    if (!std::equal(plain.begin(), plain.end(), with.begin() + static_cast<std::ptrdiff_t>(at)))
      continue;
    const bool bos = at > 0 && tok.bos_id() >= 0 && with.front() == tok.bos_id();
    const bool eos =
        at + plain.size() < with.size() && tok.eos_id() >= 0 && with.back() == tok.eos_id();
    return {bos, eos};
  }
  return {false, false};
}

void add_tokenizer(GgufWriter& w, const std::string& dir, const std::string& arch,
                   int64_t vocab_size) {
  const std::string path = join_path(dir, "tokenizer.json");
  if (!path_exists(path))
    usage_error("{}: no tokenizer.json (GGUF export needs a Hugging Face tokenizer.json)", dir);
  const json tj = read_json_file(path);
  const json& model = tj.at("model");
  if (model.value("type", "BPE") != "BPE")
    usage_error("{}: tokenizer model {} is not supported for GGUF export (BPE only)", path,
                model.value("type", ""));
  const bool byte_fallback = model.value("byte_fallback", false);
  const bool byte_level = has_type(tj.value("pre_tokenizer", json()), "ByteLevel");
  if (!byte_fallback && !byte_level)
    usage_error("{}: neither byte-level nor byte-fallback BPE; cannot export to GGUF", path);
  const std::string tok_model = byte_level ? "gpt2" : "llama";

  std::vector<std::string> tokens(vocab_size);
  std::vector<int32_t> types(vocab_size, kUnused);
  std::vector<bool> set(vocab_size, false);
  auto put = [&](const std::string& tok, int64_t id, int32_t type) {
    if (id < 0 || id >= vocab_size)
      usage_error("{}: token id {} ({}) is outside the model's vocab_size {}", path, id, tok,
                  vocab_size);
    tokens[id] = tok, types[id] = type, set[id] = true;
  };
  const std::string unk =
      model.value("unk_token", json()).is_string() ? model["unk_token"].get<std::string>() : "";
  for (const auto& [tok, id] : model.at("vocab").items()) {
    int32_t type = kNormal;
    if (!byte_level && tok.size() == 6 && tok.rfind("<0x", 0) == 0 && tok.back() == '>')
      type = kByte;
    if (!unk.empty() && tok == unk) type = kUnknown;
    put(tok, id.get<int64_t>(), type);
  }
  if (tj.contains("added_tokens") && tj["added_tokens"].is_array()) {
    for (const auto& a : tj["added_tokens"]) {
      const std::string tok = a.at("content");
      int32_t type = a.value("special", false) ? kControl : kUserDefined;
      if (!unk.empty() && tok == unk) type = kUnknown;
      put(tok, a.at("id").get<int64_t>(), type);
    }
  }
  for (int64_t i = 0; i < vocab_size; ++i) {
    if (!set[i]) tokens[i] = "[PAD" + std::to_string(i) + "]";
  }

  std::vector<std::string> merges;
  if (model.contains("merges")) {
    for (const auto& m : model["merges"]) {
      merges.push_back(m.is_array() ? m.at(0).get<std::string>() + " " + m.at(1).get<std::string>()
                                    : m.get<std::string>());
    }
  }
  std::string pre = "default";
  if (byte_level) {
    if (arch == "gpt2")
      pre = "gpt-2";
    else if (arch == "qwen2" || arch == "qwen3")
      pre = "qwen2";
    else
      pre = "llama-bpe";
  }
  w.add_string("tokenizer.ggml.model", tok_model);
  w.add_string("tokenizer.ggml.pre", pre);
  w.add_string_array("tokenizer.ggml.tokens", tokens);
  if (tok_model == "llama") {
    // SentencePiece-style: merges apply by score, highest first, so a merged token scores
    // -(rank of its merge); everything else 0.
    std::unordered_map<std::string, size_t> rank;
    for (size_t r = 0; r < merges.size(); ++r) {
      const auto sp = merges[r].find(' ');
      rank.emplace(merges[r].substr(0, sp) + merges[r].substr(sp + 1), r);
    }
    std::vector<float> scores(vocab_size, 0.0f);
    for (int64_t i = 0; i < vocab_size; ++i) {
      auto it = rank.find(tokens[i]);
      if (types[i] == kNormal && it != rank.end()) scores[i] = -static_cast<float>(it->second + 1);
    }
    w.add_float32_array("tokenizer.ggml.scores", scores);
  }
  w.add_int32_array("tokenizer.ggml.token_type", types);
  if (!merges.empty()) w.add_string_array("tokenizer.ggml.merges", merges);

  auto tok = load_tokenizer(dir);
  if (tok->bos_id() >= 0) w.add_uint32("tokenizer.ggml.bos_token_id", tok->bos_id());
  if (tok->eos_id() >= 0) w.add_uint32("tokenizer.ggml.eos_token_id", tok->eos_id());
  if (tok->pad_id() >= 0) w.add_uint32("tokenizer.ggml.padding_token_id", tok->pad_id());
  if (!unk.empty() && model["vocab"].contains(unk))
    w.add_uint32("tokenizer.ggml.unknown_token_id", model["vocab"][unk].get<uint32_t>());
  // Whether encoding adds BOS / EOS, written always: llama.cpp falls back to a per-vocabulary
  // default (BOS for most) when the keys are missing, and would then see another prompt.
  const auto [adds_bos, adds_eos] = post_processor_adds(*tok);
  w.add_bool("tokenizer.ggml.add_bos_token", adds_bos);
  w.add_bool("tokenizer.ggml.add_eos_token", adds_eos);
  if (auto* hf = dynamic_cast<HfTokenizer*>(tok.get()); hf && !hf->chat_template().empty())
    w.add_string("tokenizer.chat_template", hf->chat_template());
}

void add_arch_keys(GgufWriter& w, const ModelConfig& c) {
  const std::string a = gguf_arch(c.arch);
  auto u32 = [](int64_t v) { return static_cast<uint32_t>(v); };
  w.add_uint32(a + ".vocab_size", u32(c.vocab_size));
  w.add_uint32(a + ".context_length", u32(c.max_seq_len));
  w.add_uint32(a + ".embedding_length", u32(c.hidden_size));
  w.add_uint32(a + ".feed_forward_length", u32(c.intermediate_size));
  w.add_uint32(a + ".block_count", u32(c.n_layers));
  w.add_uint32(a + ".attention.head_count", u32(c.n_heads));
  w.add_uint32(a + ".attention.head_count_kv", u32(c.n_kv_heads));
  if (c.arch == "gpt2") {
    w.add_float32(a + ".attention.layer_norm_epsilon", static_cast<float>(c.norm_eps));
    return;
  }
  if (c.n_experts > 0) {
    w.add_uint32(a + ".expert_count", u32(c.n_experts));
    w.add_uint32(a + ".expert_used_count", u32(c.n_experts_per_tok));
  }
  w.add_float32(a + ".attention.layer_norm_rms_epsilon", static_cast<float>(c.norm_eps));
  w.add_uint32(a + ".attention.key_length", u32(c.head_dim));
  w.add_uint32(a + ".attention.value_length", u32(c.head_dim));
  w.add_float32(a + ".rope.freq_base", static_cast<float>(c.rope_theta));
  w.add_uint32(a + ".rope.dimension_count", u32(c.head_dim));
  if (c.rope_scaling == "linear") {
    w.add_string(a + ".rope.scaling.type", "linear");
    w.add_float32(a + ".rope.scaling.factor", static_cast<float>(c.rope_factor));
  }
}

}  // namespace

const std::vector<std::string>& gguf_exportable_archs() {
  static const std::vector<std::string> archs = [] {
    std::vector<std::string> out;
    for (const ModelFamily* f : model_families())
      out.insert(out.end(), f->gguf_archs.begin(), f->gguf_archs.end());
    return out;
  }();
  return archs;
}

GgmlType parse_gguf_type(const std::string& s) {
  if (s == "f32") return GgmlType::kF32;
  if (s == "f16") return GgmlType::kF16;
  if (s == "bf16") return GgmlType::kBF16;
  if (s == "q8_0") return GgmlType::kQ8_0;
  if (s == "q4_0") return GgmlType::kQ4_0;
  if (s == "q4_k" || s == "q4_K") return GgmlType::kQ4_K;
  if (s == "q6_k" || s == "q6_K") return GgmlType::kQ6_K;
  usage_error("--type {}: expected f32, f16, bf16, q8_0, q4_0, q4_k or q6_k", s);
}

uint32_t gguf_file_type(GgmlType t) {
  switch (t) {
    case GgmlType::kF32:
      return 0;
    case GgmlType::kF16:
      return 1;
    case GgmlType::kQ8_0:
      return 7;
    case GgmlType::kQ4_0:
      return 2;  // LLAMA_FTYPE_MOSTLY_Q4_0
    case GgmlType::kQ4_K:
      return 14;  // LLAMA_FTYPE_MOSTLY_Q4_K_S: every weight q4_K
    case GgmlType::kQ6_K:
      return 18;  // LLAMA_FTYPE_MOSTLY_Q6_K
    case GgmlType::kBF16:
      return 32;
  }
  return 0;
}

std::string gguf_tensor_name(const std::string& arch, const std::string& hf) {
  const GgufNames& names = model_family(arch).gguf_names;  // the family's map
  const std::string& layers = names.layers_prefix;
  if (auto it = names.top.find(hf); it != names.top.end()) return it->second;
  if (hf.rfind(layers, 0) == 0) {
    const size_t dot = hf.find('.', layers.size());
    const size_t last = hf.rfind('.');
    if (dot != std::string::npos && last > dot) {
      const std::string n = hf.substr(layers.size(), dot - layers.size());
      const std::string mod = hf.substr(dot + 1, last - dot - 1), leaf = hf.substr(last + 1);
      if (auto it = names.block.find(mod);
          it != names.block.end() && (leaf == "weight" || leaf == "bias"))
        return "blk." + n + "." + it->second + "." + leaf;
    }
  }
  fail("GGUF export: no GGUF name for {} parameter {}", arch, hf);
}

void export_gguf(const GgufExportOptions& o) {
  const GgmlType type = parse_gguf_type(o.type);
  if (!is_directory(o.model_dir)) usage_error("--model {}: not a directory", o.model_dir);
  if (o.out.empty()) usage_error("--out: a file path is required");
  if (is_directory(o.out)) usage_error("--out {}: is a directory", o.out);
  const std::string cfg_path = join_path(o.model_dir, "config.json");
  if (!path_exists(cfg_path))
    usage_error("--model {}: not a model folder (no config.json)", o.model_dir);
  {
    const json j = read_json_file(cfg_path);
    const std::string mt = j.value("model_type", "");
    bool ok = false;
    for (const auto& a : gguf_exportable_archs()) ok = ok || a == mt;
    if (!ok) {
      std::string list;
      for (const auto& a : gguf_exportable_archs()) list += (list.empty() ? "" : ", ") + a;
      usage_error("{}: model_type '{}' cannot be exported to GGUF (supported: {})", cfg_path, mt,
                  list);
    }
  }
  CausalLM model = load_model_folder(o.model_dir, torch::kCPU);
  require_language_model(model, o.model_dir, "GGUF export");
  const ModelConfig& c = model->config();
  if (c.rope_scaling != "none" && c.rope_scaling != "linear" && c.rope_scaling != "llama3")
    usage_error("GGUF export: rope_scaling {} is not supported", c.rope_scaling);
  if (c.rope_scaling == "llama3" && gguf_arch(c.arch) != "llama")
    usage_error("GGUF export: llama3 rope scaling is only exported for llama");
  const std::string arch = gguf_arch(c.arch);

  GgufWriter w;
  w.add_string("general.architecture", arch);
  std::string name = o.name;
  if (name.empty())
    name = std::filesystem::absolute(o.model_dir).lexically_normal().filename().string();
  if (name.empty()) name = std::filesystem::absolute(o.model_dir).parent_path().filename().string();
  w.add_string("general.name", name);
  w.add_uint32("general.file_type", gguf_file_type(type));
  w.add_uint32("general.quantization_version", 2);
  add_arch_keys(w, c);
  add_tokenizer(w, o.model_dir, c.arch, c.vocab_size);

  if (c.rope_scaling == "llama3") {
    w.add_tensor("rope_freqs.weight", {c.head_dim / 2}, GgmlType::kF32,
                 [c] { return llama3_rope_factors(c); });
  }
  // Mixtral: per layer, the experts' w1/w3/w2 [E, rows, cols] stacked into one tensor each.
  std::map<std::pair<int64_t, std::string>, std::vector<torch::Tensor>> experts;
  for (auto& [hf, t] : model_tensors(model)) {
    int64_t layer = 0, expert = 0;
    std::string which;
    if (c.n_experts > 0 && parse_expert(hf, &layer, &expert, &which)) {
      auto& list = experts[{layer, which}];
      if (static_cast<int64_t>(list.size()) != expert)
        fail("GGUF export: expert {} of layer {} out of order", expert, layer);
      list.push_back(t);
      if (expert + 1 == c.n_experts) {
        const char* gname = which == "w1"   ? "ffn_gate_exps"
                            : which == "w3" ? "ffn_up_exps"
                                            : "ffn_down_exps";
        std::vector<int64_t> shape = {c.n_experts, t.size(0), t.size(1)};
        GgmlType tt = type;
        tt = row_type(tt, shape.back());
        w.add_tensor("blk." + std::to_string(layer) + "." + gname + ".weight", shape, tt,
                     [list = std::move(list)] { return torch::stack(list); });
      }
      continue;
    }
    const std::string gname = gguf_tensor_name(c.arch, hf);
    // Conv1D [in, out] -> Linear layout [out, in].
    const bool transpose = c.arch == "gpt2" && t.dim() == 2 && hf.find(".h.") != std::string::npos;
    // llama (and mistral, written as llama) use interleaved RoPE in ggml.
    int64_t permute_heads = 0;
    if (arch == "llama" && hf.find("self_attn.q_proj.") != std::string::npos)
      permute_heads = c.n_heads;
    if (arch == "llama" && hf.find("self_attn.k_proj.") != std::string::npos)
      permute_heads = c.n_kv_heads;
    std::vector<int64_t> shape = t.sizes().vec();
    if (transpose) std::swap(shape[0], shape[1]);
    GgmlType tt = type;
    if (shape.size() < 2 || always_f32(gname)) tt = GgmlType::kF32;
    if (tt != GgmlType::kF32) tt = row_type(tt, shape.back());
    // Gemma's RMSNorm scales by (1 + weight); llama.cpp's gemma stores the sum.
    const bool plus_one =
        c.arch == "gemma" && hf.size() >= 11 && hf.compare(hf.size() - 11, 11, "norm.weight") == 0;
    // Transformed only when written: one converted tensor in memory at a time.
    w.add_tensor(gname, shape, tt, [t = t, transpose, permute_heads, plus_one] {
      torch::Tensor v = transpose ? t.t() : t;
      if (plus_one) v = v.to(torch::kFloat) + 1.0;
      return permute_heads ? permute_qk(v, permute_heads) : v;
    });
  }
  w.write(o.out);
  log_info("wrote {} ({} tensors, {} metadata keys, {}) from {}", o.out, w.tensor_count(),
           w.kv_count(), ggml_type_name(type), o.model_dir);
}

}  // namespace reef
