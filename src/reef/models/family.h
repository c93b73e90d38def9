// The model families and their registry. A family (models/<name>/) holds everything Reef knows
// about its architectures: the arch names (HF model_type), the config rules and derived values,
// the presets, the HF config.json mapping and name maps, and the tensor-parallel plan as data.
// Each registers once (the list in family.cpp); every list of archs, every model rule and every
// preset comes from here. Torch-free, so config loading can link it (install_model_families()).
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "reef/config/config.h"
#include "reef/config/model_rules.h"

namespace reef {

class HfReader;  // models/hf_reader.h

// How tensor parallelism treats a module (parallel/tensor_parallel.h applies it; torchtitan's
// parallelize_llama plan, as data).
enum class TpStyle {
  kColumn,       // Linear: output features split over the ranks (weight and bias along dim 0)
  kRow,          // Linear: input features split (weight along dim 1); partial sums all-reduced
                 // before the bias, which stays whole
  kVocab,        // Embedding or LM head Linear: contiguous vocabulary slices (dim 0)
  kGatherInput,  // Attention or GatedMLP: its input enters a column-parallel region (copy to
                 // the group, or with sequence parallelism the all-gather of the sequence)
  kPartialGrad,  // replicated, but sees only this rank's heads: gradients summed over the group
};

// One plan entry: a module name pattern, dot-separated, where "*" matches one component
// ("model.layers.*.self_attn.q_proj"), and its style.
struct TpRule {
  std::string pattern;
  TpStyle style;
};

// The style of the first rule whose pattern matches `module_name` ("model.layers.3.mlp"), or
// none (replicated).
std::optional<TpStyle> tp_style(const std::vector<TpRule>& plan, const std::string& module_name);

// llama.cpp's tensor names for a family's HF parameter names (convert_hf_to_gguf.py's).
struct GgufNames {
  std::string layers_prefix;                 // "model.layers." (then the layer index)
  std::map<std::string, std::string> top;    // whole HF parameter name -> GGUF name
  std::map<std::string, std::string> block;  // module inside a layer -> GGUF "blk.N.<name>"
};

using PresetKeys = std::map<std::string, std::string>;  // dotted key -> value

struct ModelFamily {
  std::string name;                // the folder: "llama"
  std::vector<std::string> archs;  // the model.arch values it builds, in message order
  bool uses_rope = true;
  // The family's own rules for a config whose arch is one of archs, after the generic ranges
  // (config/model_rules.h) and the rules every family shares (check_model_rules).
  void (*check)(const ModelConfig& m, const ConfigChecker& c) = nullptr;
  // Fills the derived fields and what each HF architecture hard-codes (never throws).
  void (*derive)(ModelConfig& m) = nullptr;
  // Built-in presets (name -> dotted keys).
  std::map<std::string, PresetKeys> (*presets)() = nullptr;

  // Hugging Face: the `architectures` class names config.json may carry for `arch` (the first
  // is the one Reef writes).
  std::vector<std::string> (*hf_classes)(const std::string& arch) = nullptr;
  // Adds the family's keys to config.json for resolved `c` (the shared ones are already there).
  void (*to_hf)(const ModelConfig& c, nlohmann::json& j) = nullptr;
  // A ModelConfig (not yet resolved) from config.json of model_type `arch`.
  ModelConfig (*from_hf)(const HfReader& r, const std::string& arch) = nullptr;
  // The parameter a checkpoint tensor fills ("" to skip); see hf_parameter_name (hf_config.h).
  std::string (*hf_parameter_name)(const ModelConfig& c, const std::string& tensor_name) = nullptr;

  // GGUF export (checkpoint/gguf_export.h): the archs it writes, llama.cpp's architecture for
  // each (mistral and mixtral run as "llama"), and the tensor names.
  std::vector<std::string> gguf_archs;
  std::string (*gguf_arch)(const std::string& arch) = nullptr;
  GgufNames gguf_names;

  // Size accounting for a resolved config, without building the model: every parameter
  // (count_parameters in causal_lm.h: include_embeddings=false leaves out the token and position
  // embeddings), and the weights of the matrix multiplies one token goes through in one decoder
  // layer (attention projections, the MLP or its router and active experts).
  int64_t (*count_parameters)(const ModelConfig& c, bool include_embeddings) = nullptr;
  double (*layer_matmul_weights)(const ModelConfig& c) = nullptr;

  // Tensor parallelism: the archs the plan covers (dense ones; experts are not split), and the
  // plan. Parameters no rule names are replicated.
  std::vector<std::string> tp_archs;
  std::vector<TpRule> tp_plan;
};

// Every family, in registration order.
const std::vector<const ModelFamily*>& model_families();
// The family building `arch`, or null.
const ModelFamily* find_model_family(const std::string& arch);
// The same; a usage error listing every supported arch when there is none.
const ModelFamily& model_family(const std::string& arch);

// Every arch of every family, in the order error messages list them:
// llama, mistral, mixtral, qwen2, qwen3, gemma, gpt2
const std::vector<std::string>& supported_archs();
std::string supported_archs_list();  // "llama, mistral, ..., gpt2"
// True for an arch of the llama family (RoPE + RMSNorm + gated MLP / experts).
bool is_llama_family(const std::string& arch);

// Whether the model's output layer is the token embedding (tie_embeddings on a language model;
// a sequence classifier's `score` head is never tied, whatever config.json says).
inline bool ties_lm_head(const ModelConfig& c) { return c.tie_embeddings && c.num_labels == 0; }
// Parameters of the output layer apart from the token embedding: the LM head (V x C, none when
// tied) or a classifier's score head (num_labels x C).
inline int64_t head_parameters(const ModelConfig& c) {
  if (c.num_labels > 0) return c.num_labels * c.hidden_size;
  return ties_lm_head(c) ? 0 : c.vocab_size * c.hidden_size;
}
// The Hugging Face class of a sequence classifier of `arch` ("LlamaForSequenceClassification",
// "GPT2ForSequenceClassification").
std::string sequence_classifier_class(const std::string& arch);

// Installs the catalog config/ loads and validates configs with (config/model_rules.h): the
// archs, presets and rules of every family. Call once at start, before loading a config.
void install_model_families();

// The model rules, one set for config validation and model building: those every family shares
// (a supported arch, heads dividing hidden_size and each other, activation and RoPE scaling
// names and factors), then the family's. Failures name the key (with its origin when `c` has
// origins).
void check_model_rules(const ModelConfig& m, const ConfigChecker& c);
// m with the derived fields filled in by its family (unchanged for an unknown arch).
ModelConfig derive_model_config(const ModelConfig& m);

// Checks the generic ranges and the model rules, then fills derived fields: n_kv_heads 0 ->
// n_heads; head_dim 0 -> hidden/n_heads; intermediate_size 0 -> 4*hidden (gpt2) or 8/3*hidden
// rounded up to a multiple of 64; activation "auto"/"" -> the arch's own; rope_scaling
// ""/"default" -> "none"; n_experts 0 -> 8 for mixtral; what each HF architecture hard-codes
// (qwen2's q/k/v biases, qwen3's q/k norms, gemma's tied embeddings, gpt2's biases). Throws
// reef::Error(kUsage) with the same one-line messages config validation gives (without
// origins). vocab_size is left as is (0 = not yet known).
ModelConfig resolve_model_config(const ModelConfig& cfg);

}  // namespace reef
