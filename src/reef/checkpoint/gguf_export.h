// GGUF export of a Hugging Face / Reef model folder for llama.cpp: the architecture metadata,
// the tokenizer (tokenizer.json's vocabulary, token types, merges, special ids, chat template)
// and the weights under llama.cpp's tensor names, following the conventions of llama.cpp's
// convert_hf_to_gguf.py: mistral and mixtral are written as "llama" (mixtral with
// llama.expert_count / expert_used_count, its router as blk.N.ffn_gate_inp and its experts'
// w1/w3/w2 stacked into blk.N.ffn_gate_exps / ffn_up_exps / ffn_down_exps [E, rows, cols]);
// gemma is not exported yet (a usage error); for "llama" the q/k projection rows are
// permuted from HF's rotate-half layout to ggml's interleaved RoPE layout (qwen2/qwen3 use NEOX
// RoPE and are not permuted); gpt2's Conv1D weights are transposed to [out, in]; a tied LM head
// is not written. 1-D tensors (norms, biases) stay f32 whatever the type; q8_0 applies to 2-D
// weights whose rows are a multiple of 32 values, others fall back to f16.
#pragma once

#include <string>
#include <vector>

#include "reef/checkpoint/gguf_writer.h"

namespace reef {

struct GgufExportOptions {
  std::string model_dir;     // config.json + safetensors + tokenizer.json
  std::string out;           // the .gguf file, written atomically
  std::string type = "f16";  // f32, f16, bf16 or q8_0
  std::string name;          // general.name; empty = the folder's name
};

// The model_types export_gguf writes: llama, mistral, mixtral, qwen2, qwen3, gpt2.
const std::vector<std::string>& gguf_exportable_archs();

// "f32" -> kF32, "f16", "bf16", "q8_0"; anything else is a usage error naming the choices.
GgmlType parse_gguf_type(const std::string& s);

// llama.cpp's llama_ftype for a whole-file type (general.file_type): 0, 1, 32, 7.
uint32_t gguf_file_type(GgmlType t);

// The GGUF tensor name for an HF parameter name of `arch` (Reef's model.arch), or "" when the
// parameter has no GGUF counterpart. Throws for an unknown parameter name.
std::string gguf_tensor_name(const std::string& arch, const std::string& hf_name);

// Checks the inputs (usage errors: missing folder, unsupported arch, bad type, no
// tokenizer.json), loads the model and writes the file. Nothing is written on error.
void export_gguf(const GgufExportOptions& opts);

}  // namespace reef
