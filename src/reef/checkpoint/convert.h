// `reef convert`: rewrites a model folder (Hugging Face or Reef) in another weight dtype and/or
// shard layout, as transformers' `model.to(dtype).save_pretrained(out, max_shard_size=...)`
// would, without Python. The weights are loaded into a model built directly in the target dtype
// (peak memory near one copy of the model in that dtype) and written with Hugging Face names;
// config.json is the source's with its dtype updated, and generation_config.json, the tokenizer
// files and the chat template are copied byte for byte. A distributed training checkpoint
// (checkpoint/dist_checkpoint.h) is consolidated this way into one folder. With an adapter, a PEFT
// LoRA adapter folder is merged into the weights first (as peft's merge_and_unload), so the result
// is a plain model folder.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

namespace reef {

struct ConvertOptions {
  std::string model_dir;         // source folder (config.json + weights)
  std::string out_dir;           // written as a whole: a temp folder beside it, then renamed
  std::string dtype = "auto";    // auto (the stored weights' dtype) | float32 | float16 | bfloat16
  uint64_t max_shard_bytes = 0;  // 0 = one model.safetensors
  bool overwrite = false;        // replace an existing out_dir
  std::string adapter_dir;       // a PEFT LoRA adapter folder to merge in; empty = none
};

struct ConvertResult {
  torch::ScalarType dtype = torch::kFloat;
  std::vector<std::string> weight_files;  // written, relative to out_dir
  std::vector<std::string> copied_files;  // copied unchanged from the source
  int64_t parameters = 0;
  uint64_t weight_bytes = 0;
};

ConvertResult convert_model_folder(const ConvertOptions& options);

// "5GB" (10^9, as transformers counts), "500MB", "2GiB", "64KiB", "123" (bytes); throws
// reef::Error(kUsage) naming `what` for anything else or zero.
uint64_t parse_byte_size(const std::string& text, const std::string& what);

}  // namespace reef
