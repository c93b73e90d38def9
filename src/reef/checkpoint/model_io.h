// A model as a Hugging Face folder: model.safetensors or model-0000K-of-0000N.safetensors shards
// with model.safetensors.index.json (HF parameter names), config.json, generation_config.json and
// the tokenizer files, written and read strictly (every tensor in the files is used, every
// parameter filled, shapes checked). F32, F16, BF16 and F64 weights load into parameters of any
// floating dtype, converted tensor by tensor from the files' memory maps.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "reef/models/causal_lm.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

class DistCheckpoint;

// The tensors a checkpoint holds: the model's named parameters (HF names), detached.
std::vector<std::pair<std::string, torch::Tensor>> model_tensors(CausalLM& model);

// "float32"/"fp32"/"f32", "float16"/"fp16"/"f16"/"half", "bfloat16"/"bf16"; throws
// reef::Error(kUsage) naming `what` (e.g. "--dtype") for anything else.
torch::ScalarType parse_weight_dtype(const std::string& name, const std::string& what);
// "float32", "float16", "bfloat16": the names config.json's torch_dtype uses.
std::string hf_dtype_name(torch::ScalarType dtype);
// Writes the weights, config.json, generation_config.json and (if given) the tokenizer files into
// the existing directory `dir`. max_shard_bytes = 0 writes one model.safetensors; otherwise
// shards of at most that many bytes (a larger tensor gets its own) in parameter order, plus the
// index (see checkpoint/sharded.h). Weights are written in the parameters' dtype.
void save_model_folder(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer,
                       uint64_t max_shard_bytes = 0);

// config.json, generation_config.json and (if given) the tokenizer files of `model`, without
// the weights (save_model_folder writes these too; distributed checkpoints write weights apart).
void save_model_config(const std::string& dir, CausalLM& model, const Tokenizer* tokenizer);

// Loads the weights of folder `path` (model.safetensors, else the sharded index, else a
// distributed checkpoint's dist_checkpoint.json), or of a .safetensors or .index.json path,
// into `model`, strictly; errors name the file and tensor.
void load_model_weights(CausalLM& model, const std::string& path);
// A language model's weights (`path` as above) into a sequence classifier built on its body (a
// reward model from an SFT model): every body tensor strictly, the files' LM head not used, and
// the classifier's `score` head left as it is for the caller to initialise (as transformers
// leaves a new head to its initialisation).
void load_backbone_weights(CausalLM& model, const std::string& path);
// The same from the "model" tensors of a distributed checkpoint (checkpoint/dist_checkpoint.h),
// each parameter read whole from the pieces that hold it.
void load_model_weights(CausalLM& model, const DistCheckpoint& checkpoint);

// Builds the model described by `<dir>/config.json` with parameters of `dtype` (created in that
// dtype, so the peak is one copy of the model in it, not an fp32 copy first) and loads its
// weights, converting from the stored dtype.
CausalLM load_model_folder(const std::string& dir, const torch::Device& device,
                           torch::ScalarType dtype = torch::kFloat);

// A usage error when the model of folder `dir` is a sequence classifier (a reward model) and
// `command` ("reef generate", ...) needs a language model.
void require_language_model(const CausalLM& model, const std::string& dir,
                            const std::string& command);

}  // namespace reef
