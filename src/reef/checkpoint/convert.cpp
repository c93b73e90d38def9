// Implementation of checkpoint/convert.h.
#include "reef/checkpoint/convert.h"

#include <unistd.h>

#include <cctype>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/log.h"
#include "reef/base/strings.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/checkpoint/sharded.h"

namespace reef {
namespace {

// Files a model folder carries beside its weights and config that describe how to use it; they
// are copied unchanged (transformers' save_pretrained of the tokenizer would rewrite them).
const char* const kCopiedFiles[] = {
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "tokenizer.model",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
    "chat_template.json",
    "tokenizer.tiktoken",
};

// The dtype the folder's weights are stored in when they all share one; float32 otherwise.
torch::ScalarType stored_dtype(const std::string& dir) {
  std::set<torch::ScalarType> seen;
  if (!path_exists(join_path(dir, kWeightsFile)) &&
      !path_exists(join_path(dir, kWeightsIndexFile)) &&
      looks_distributed(dir)) {  // a distributed checkpoint: consolidated by loading it
    const DistCheckpoint ck = DistCheckpoint::open(dir);
    for (const auto& name : ck.names("model")) seen.insert(ck.tensor(name).dtype);
  } else {
    WeightFiles files = WeightFiles::open(dir);
    for (const auto& name : files.names()) seen.insert(files.file_of(name).dtype(name));
  }
  if (seen.size() == 1) {
    const auto t = *seen.begin();
    if (t == torch::kHalf || t == torch::kBFloat16) return t;
  }
  return torch::kFloat;
}

}  // namespace

uint64_t parse_byte_size(const std::string& text, const std::string& what) {
  size_t i = 0;
  while (i < text.size() && std::isdigit(static_cast<unsigned char>(text[i]))) ++i;
  const std::string digits = text.substr(0, i), unit = ascii_lower(text.substr(i));
  uint64_t scale = 0;
  if (unit.empty() || unit == "b")
    scale = 1;
  else if (unit == "kb")
    scale = 1000ULL;
  else if (unit == "mb")
    scale = 1000ULL * 1000;
  else if (unit == "gb")
    scale = 1000ULL * 1000 * 1000;
  else if (unit == "kib")
    scale = 1ULL << 10;
  else if (unit == "mib")
    scale = 1ULL << 20;
  else if (unit == "gib")
    scale = 1ULL << 30;
  if (digits.empty() || digits.size() > 12 || scale == 0)
    usage_error("{}: '{}' is not a size; write e.g. 5GB, 500MB, 2GiB or a number of bytes", what,
                text);
  const uint64_t bytes = std::stoull(digits) * scale;
  if (bytes == 0) usage_error("{}: the size must be positive", what);
  return bytes;
}

ConvertResult convert_model_folder(const ConvertOptions& o) {
  namespace fs = std::filesystem;
  if (!is_directory(o.model_dir)) usage_error("--model: no such folder: {}", o.model_dir);
  const std::string cfg_path = join_path(o.model_dir, "config.json");
  if (!path_exists(cfg_path))
    usage_error("--model: not a model folder (no config.json): {}", o.model_dir);
  if (o.out_dir.empty()) usage_error("--out: empty path");
  if (!o.adapter_dir.empty() && !is_directory(o.adapter_dir))
    usage_error("--adapter: no such folder: {}", o.adapter_dir);
  if (path_exists(o.out_dir)) {
    std::error_code ec;
    if (fs::equivalent(o.model_dir, o.out_dir, ec))
      usage_error("--out {} is the source folder; write the conversion elsewhere", o.out_dir);
    if (!o.overwrite) usage_error("--out {} exists; pass --overwrite to replace it", o.out_dir);
    if (!is_directory(o.out_dir)) usage_error("--out {} exists and is not a folder", o.out_dir);
  }
  nlohmann::json cfg = read_json_file(cfg_path);

  ConvertResult r;
  r.dtype = o.dtype == "auto" ? stored_dtype(o.model_dir) : parse_weight_dtype(o.dtype, "--dtype");
  CausalLM model{nullptr};
  if (o.adapter_dir.empty()) {
    model = load_model_folder(o.model_dir, torch::kCPU, r.dtype);
  } else {
    // Merged in float32 and rounded once to the output dtype: what peft computes when it adds
    // its float32 delta to the stored weights.
    model = load_model_folder(o.model_dir, torch::kCPU, torch::kFloat);
    load_adapter(o.adapter_dir, model);
    merge_lora(model);
    model->to(r.dtype);
  }
  const auto tensors = model_tensors(model);
  for (const auto& [name, t] : tensors) {
    r.parameters += t.numel();
    r.weight_bytes += t.nbytes();
  }

  // Everything is written into a temp folder beside --out and renamed into place at the end, so
  // an interrupted conversion never leaves a half-written model where --out points.
  fs::path out = fs::absolute(o.out_dir).lexically_normal();
  if (!out.has_filename()) out = out.parent_path();
  const std::string parent = out.parent_path().string();
  if (!parent.empty()) make_dirs(parent);
  const std::string tmp =
      join_path(parent, ".tmp-" + out.filename().string() + "-" + std::to_string(::getpid()));
  if (path_exists(tmp)) remove_all(tmp);
  make_dirs(tmp);
  try {
    r.weight_files = save_weights(tmp, tensors, o.max_shard_bytes);
    cfg["torch_dtype"] = hf_dtype_name(r.dtype);
    if (cfg.contains("dtype")) cfg["dtype"] = hf_dtype_name(r.dtype);  // transformers 5 spelling
    write_file_atomic(join_path(tmp, "config.json"), cfg.dump(2) + "\n");
    for (const char* f : kCopiedFiles) {
      const std::string src = join_path(o.model_dir, f);
      if (!path_exists(src)) continue;
      write_file_atomic(join_path(tmp, f), read_file(src));
      r.copied_files.push_back(f);
    }
    if (path_exists(o.out_dir)) {
      // --overwrite: the old folder is moved aside first, so a failure here loses nothing.
      const std::string old = tmp + ".old";
      rename_path(o.out_dir, old);
      rename_path(tmp, out.string());
      remove_all(old);
    } else {
      rename_path(tmp, out.string());
    }
    if (!parent.empty()) fsync_dir(parent);
  } catch (...) {
    remove_all(tmp);
    throw;
  }
  return r;
}

}  // namespace reef
