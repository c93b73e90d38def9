// Implementation of checkpoint/model_io.h.
#include "reef/checkpoint/model_io.h"

#include <fmt/format.h>

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/strings.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/safetensors.h"
#include "reef/checkpoint/sharded.h"
#include "reef/models/hf_config.h"
#include "reef/nn/init.h"

namespace reef {

std::vector<std::pair<std::string, torch::Tensor>> model_tensors(CausalLM& model) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& item : model->named_parameters(true))
    out.emplace_back(item.key(), item.value().detach());
  return out;
}

torch::ScalarType parse_weight_dtype(const std::string& name, const std::string& what) {
  const std::string n = ascii_lower(name);
  if (n == "float32" || n == "fp32" || n == "f32") return torch::kFloat;
  if (n == "float16" || n == "fp16" || n == "f16" || n == "half") return torch::kHalf;
  if (n == "bfloat16" || n == "bf16") return torch::kBFloat16;
  usage_error("{}: unknown dtype '{}'; expected float32, float16 or bfloat16", what, name);
}

std::string hf_dtype_name(torch::ScalarType dtype) {
  switch (dtype) {
    case torch::kFloat:
      return "float32";
    case torch::kHalf:
      return "float16";
    case torch::kBFloat16:
      return "bfloat16";
    case torch::kDouble:
      return "float64";
    default:
      usage_error("no Hugging Face dtype name for {}", c10::toString(dtype));
  }
}

void save_model_folder(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer,
                       uint64_t max_shard_bytes) {
  // A model folder holds base weights only: LoRA branches go to an adapter (checkpoint/peft_io.h)
  // or are merged first, never silently into model.safetensors under names nothing loads.
  for (const auto& item : model->named_parameters(true))
    if (item.key().find(".lora_A.") != std::string::npos ||
        item.key().find(".lora_B.") != std::string::npos)
      usage_error(
          "the model has LoRA branches ('{}'); merge them (merge_lora) or save an adapter "
          "(save_adapter) instead of a model folder",
          item.key());
  save_weights(dir, model_tensors(model), max_shard_bytes, {{"format", "pt"}});
  save_model_config(dir, model, tokenizer);
}

void save_model_config(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer) {
  nlohmann::json cfg = hf_config_json(model->config());
  auto params = model->parameters();
  if (!params.empty()) cfg["torch_dtype"] = hf_dtype_name(params.front().scalar_type());
  nlohmann::json gen = {{"_from_model_config", true}};
  if (tokenizer) {
    // transformers writes null for a token the tokenizer does not have.
    auto id = [](int64_t i) { return i >= 0 ? nlohmann::json(i) : nlohmann::json(nullptr); };
    cfg["bos_token_id"] = gen["bos_token_id"] = id(tokenizer->bos_id());
    cfg["eos_token_id"] = gen["eos_token_id"] = id(tokenizer->eos_id());
    tokenizer->save(dir);
  }
  write_file_atomic(join_path(dir, "config.json"), cfg.dump(2));
  write_file_atomic(join_path(dir, "generation_config.json"), gen.dump(2));
}

namespace {

bool loadable_dtype(torch::ScalarType t) {
  return t == torch::kFloat || t == torch::kHalf || t == torch::kBFloat16 || t == torch::kDouble;
}

}  // namespace

namespace {

// Where weights come from: the tensors of a model folder's files or of a distributed checkpoint.
struct WeightSource {
  std::string source;                                    // the file to name in messages
  std::vector<std::string> names;                        // every tensor
  std::function<std::string(const std::string&)> where;  // the file holding a tensor, for messages
  std::function<std::vector<int64_t>(const std::string&)> shape;
  std::function<torch::ScalarType(const std::string&)> dtype;
  std::function<torch::Tensor(const std::string&)> tensor;            // whole, for comparisons
  std::function<void(const std::string&, torch::Tensor&)> copy_into;  // the tensor into a parameter
};

// `backbone_only`: a language model's files into a sequence classifier: the files' LM head is
// not used and the classifier's head is not filled.
void load_from(CausalLM& model, const WeightSource& files, bool backbone_only = false) {
  const std::string head = backbone_only ? model->head_name() + ".weight" : "";
  const std::string& source = files.source;
  const auto& where = files.where;
  // Which file tensor fills each parameter: the model layer maps the Hub's spellings (e.g. GPT-2
  // without "transformer.") and names the buffers to skip; everything else must match exactly.
  std::map<std::string, std::string> tensor_of;  // parameter name -> tensor name in the files
  // A tied model whose files also hold lm_head.weight (transformers writes one when the tie was
  // broken in memory): tying makes the head the embedding, so the copy is accepted only when
  // it equals the embedding; a different head is an error, never silently dropped.
  std::string tied_head;
  const bool tied = ties_lm_head(model->config());
  for (const auto& name : files.names) {
    std::string param = hf_parameter_name(model->config(), name);
    if (param.empty()) continue;
    if (backbone_only && (param == "lm_head.weight" || param == head)) continue;
    if (tied && param == "lm_head.weight") {
      tied_head = name;
      continue;
    }
    auto [it, fresh] = tensor_of.emplace(param, name);
    if (!fresh)
      fail("{}: tensors '{}' and '{}' both hold parameter '{}'", source, it->second, name, param);
  }
  if (!tied_head.empty()) {
    const std::string embed = model->token_embedding_name();
    auto e = tensor_of.find(embed);
    if (e == tensor_of.end()) fail("{}: missing tensor '{}'", source, embed);
    if (!torch::equal(files.tensor(tied_head), files.tensor(e->second)))
      fail(
          "{}: config.json ties the embeddings (tie_word_embeddings: true) but tensor '{}' differs "
          "from '{}'; set tie_word_embeddings to false to load them as two matrices",
          where(tied_head), tied_head, e->second);
  }
  // Check everything before the first parameter is touched, so a bad folder changes nothing.
  auto params = model->named_parameters(true);
  std::set<std::string> wanted;
  for (const auto& item : params) {
    const std::string& param = item.key();
    if (param == head) continue;
    wanted.insert(param);
    auto found = tensor_of.find(param);
    if (found == tensor_of.end()) fail("{}: missing tensor '{}'", source, param);
    const std::string& name = found->second;
    const auto shape = files.shape(name);
    const auto dtype = files.dtype(name);
    const auto& p = item.value();
    if (!c10::IntArrayRef(shape).equals(p.sizes()))
      fail("{}: tensor '{}' has shape {} but the model expects {}", where(name), name,
           c10::str(c10::IntArrayRef(shape)), c10::str(p.sizes()));
    if (!loadable_dtype(dtype))
      fail("{}: tensor '{}' has dtype {}; model weights load from F32, F16, BF16 or F64",
           where(name), name, safetensors_dtype_name(dtype));
    if (!torch::isFloatingType(p.scalar_type()))
      fail("{}: parameter '{}' has dtype {}, not a floating type", source, param,
           c10::toString(p.scalar_type()));
  }
  for (const auto& [param, name] : tensor_of)
    if (!wanted.count(param))
      fail("{}: tensor '{}' is not a parameter of this model", where(name), name);
  torch::NoGradGuard ng;
  for (auto& item : params)
    if (item.key() != head) files.copy_into(tensor_of.at(item.key()), item.value());
}

}  // namespace

namespace {
void load_weights_from(CausalLM& model, const std::string& path, bool backbone_only);
void load_dist_weights(CausalLM& model, const DistCheckpoint& ck, bool backbone_only);
}  // namespace

void load_model_weights(CausalLM& model, const std::string& path) {
  load_weights_from(model, path, false);
}

void load_backbone_weights(CausalLM& model, const std::string& path) {
  if (model->config().num_labels <= 0)
    fail("load_backbone_weights: the model is not a sequence classifier (internal error)");
  load_weights_from(model, path, true);
}

namespace {

void load_weights_from(CausalLM& model, const std::string& path, bool backbone_only) {
  if (is_directory(path) && !path_exists(join_path(path, kWeightsFile)) &&
      !path_exists(join_path(path, kWeightsIndexFile)) && looks_distributed(path))
    return load_dist_weights(model, DistCheckpoint::open(path), backbone_only);
  WeightFiles files = WeightFiles::open(path);
  WeightSource src;
  src.source = files.source();
  src.names = files.names();
  src.where = [&](const std::string& name) {
    return files.sharded()
               ? fmt::format("{} (shard {})", files.source(), files.file_of(name).path())
               : files.source();
  };
  src.shape = [&](const std::string& name) { return files.file_of(name).entry(name).shape; };
  src.dtype = [&](const std::string& name) { return files.file_of(name).entry(name).dtype; };
  src.tensor = [&](const std::string& name) { return files.tensor(name); };
  // One tensor at a time: a view into the mapped file, converted by copy_ into the parameter,
  // whose file pages are then dropped so that the mapping never adds a second copy to RSS.
  src.copy_into = [&](const std::string& name, torch::Tensor& param) {
    const SafetensorsFile& file = files.file_of(name);
    torch::Tensor view = file.tensor(name);
    param.copy_(view);
    // Only a view into the mapping (tensor() copies unaligned data instead).
    const auto* p = static_cast<const uint8_t*>(view.data_ptr());
    if (p >= file.data() && p + view.nbytes() <= file.data() + file.data_size())
      release_mapped_pages(p, view.nbytes());
  };
  load_from(model, src, backbone_only);
}

}  // namespace

void load_model_weights(CausalLM& model, const DistCheckpoint& ck) {
  load_dist_weights(model, ck, false);
}

namespace {

void load_dist_weights(CausalLM& model, const DistCheckpoint& ck, bool backbone_only) {
  WeightSource src;
  src.source = ck.index_path();
  src.names = ck.names("model");
  src.where = [&](const std::string& name) {
    std::string files;
    for (const auto& p : ck.tensor(name).pieces)
      if (files.find(p.file) == std::string::npos) files += (files.empty() ? "" : ", ") + p.file;
    return fmt::format("{} ({})", ck.index_path(), files);
  };
  src.shape = [&](const std::string& name) { return ck.tensor(name).shape; };
  src.dtype = [&](const std::string& name) { return ck.tensor(name).dtype; };
  src.tensor = [&](const std::string& name) {
    return ck.read(name, TensorSlice::whole(ck.tensor(name).shape));
  };
  src.copy_into = [&](const std::string& name, torch::Tensor& param) {
    ck.read_into(name, TensorSlice::whole(ck.tensor(name).shape),
                 param);  // pages released per piece
  };
  load_from(model, src, backbone_only);
}

}  // namespace

CausalLM load_model_folder(const std::string& dir, const torch::Device& device,
                           torch::ScalarType dtype) {
  if (!torch::isFloatingType(dtype))
    usage_error("model parameters must have a floating dtype, not {}", c10::toString(dtype));
  std::string cfg_path = join_path(dir, "config.json");
  if (!path_exists(cfg_path)) usage_error("not a model folder (no config.json): {}", dir);
  const nlohmann::json j = read_json_file(cfg_path);
  const ModelConfig cfg = model_config_from_hf(j, cfg_path);
  CausalLM model{nullptr};
  {
    // Parameters are created in `dtype` directly; RoPE tables and norms compute in float32
    // explicitly, so nothing else depends on the default dtype.
    const auto previous = torch::get_default_dtype();
    torch::set_default_dtype(c10::scalarTypeToTypeMeta(dtype));
    try {
      SkipInitGuard no_random_init;  // every parameter is loaded below, strictly
      model = CausalLM(cfg);
    } catch (...) {
      torch::set_default_dtype(previous);
      throw;
    }
    torch::set_default_dtype(previous);
  }
  load_model_weights(model, dir);
  model->to(device);
  return model;
}

void require_language_model(const CausalLM& model, const std::string& dir,
                            const std::string& command) {
  const ModelConfig& c = model->config();
  if (c.num_labels > 0)
    usage_error(
        "{}: the model is a sequence classifier ({}, {} output(s)), not a language model; {} "
        "needs a language model (score texts with a reward model by reef score)",
        dir, sequence_classifier_class(c.arch), c.num_labels, command);
}

}  // namespace reef
