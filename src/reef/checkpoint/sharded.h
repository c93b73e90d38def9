// Model weights as one safetensors file or as Hugging Face shards:
// `model-0000K-of-0000N.safetensors` plus `model.safetensors.index.json` ({"metadata":
// {"total_size", "total_parameters"}, "weight_map": {tensor: shard file}}), the layout
// transformers' save_pretrained writes. Reading opens every file as an mmap (no tensor data is read
// up front) and checks that the index and the shards agree; writing fills shards in the given order
// without splitting a tensor.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "reef/checkpoint/safetensors.h"

namespace reef {

inline constexpr const char* kWeightsFile = "model.safetensors";
inline constexpr const char* kWeightsIndexFile = "model.safetensors.index.json";

// A parsed model.safetensors.index.json.
struct WeightIndex {
  std::map<std::string, std::string> weight_map;  // tensor name -> shard file (relative)
  uint64_t total_size = 0;                        // metadata.total_size (0 when absent)
};

// Reads and validates an index file: a JSON object whose "weight_map" maps names to shard file
// names relative to the index's folder (no absolute paths, no ".."). Errors name the file.
WeightIndex read_weight_index(const std::string& path);
// Writes an index as transformers does (indent 2, sorted keys, trailing newline), atomically.
void write_weight_index(const std::string& path, const WeightIndex& index,
                        uint64_t total_parameters);

// "model-00002-of-00005.safetensors" for k=2, n=5 (1-based).
std::string shard_file_name(int k, int n);

// Splits tensors of the given byte sizes, in order, into consecutive shards of at most
// `max_shard_bytes` each; a tensor larger than that gets a shard of its own. 0 = one shard.
// Returns each shard's [begin, end) range of indices. No tensors gives no shards.
std::vector<std::pair<size_t, size_t>> plan_shards(const std::vector<uint64_t>& sizes,
                                                   uint64_t max_shard_bytes);

// Writes `tensors` into the existing folder `dir`: as model.safetensors when everything fits in
// one shard (or max_shard_bytes is 0), otherwise as shards + index. Each file is atomic; files of
// the other layout, and shards of an earlier save that this one does not overwrite, are removed
// afterwards so that no stale weights shadow the new ones. Returns the file names written.
std::vector<std::string> save_weights(
    const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    uint64_t max_shard_bytes,
    const std::map<std::string, std::string>& metadata = {{"format", "pt"}});

// The weights of a model folder, single-file or sharded, opened (mmap) and cross-checked.
// `path` is a folder (model.safetensors is preferred, as transformers does, then the index), an
// index file, or a .safetensors file. Checks: every shard the index names exists and is valid,
// every tensor the index lists is in its shard, no tensor is in two shards, and every tensor in
// a shard is listed in the index. Errors name the index or shard file and the tensor.
class WeightFiles {
 public:
  static WeightFiles open(const std::string& path);

  // The file to name in messages: the index when sharded, else the single file.
  const std::string& source() const { return source_; }
  bool sharded() const { return sharded_; }
  // Every tensor, sorted by name.
  std::vector<std::string> names() const;
  bool contains(const std::string& name) const { return where_.count(name) > 0; }
  // The shard (or the single file) holding `name`; throws naming source() if absent.
  const SafetensorsFile& file_of(const std::string& name) const;
  // A zero-copy CPU view of the tensor in its file's mapping (see SafetensorsFile::tensor).
  torch::Tensor tensor(const std::string& name) const { return file_of(name).tensor(name); }

 private:
  std::string source_;
  bool sharded_ = false;
  std::vector<SafetensorsFile> files_;
  std::map<std::string, size_t> where_;  // tensor name -> index into files_
};

}  // namespace reef
