// Implementation of sharded.h. The index is parsed with nlohmann::json (its std::map-backed
// objects give transformers' sort_keys order on output); shards are written one at a time with
// save_safetensors (atomic), then the index, then stale files of the other layout are removed.
#include "reef/checkpoint/sharded.h"

#include <fmt/format.h>

#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"

namespace reef {
namespace {

std::string parent_dir(const std::string& path) {
  auto slash = path.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// True for names like model-00001-of-00003.safetensors (any numbers of five digits).
bool is_shard_name(const std::string& name) {
  static const std::regex re(R"(model-\d{5}-of-\d{5}\.safetensors)");
  return std::regex_match(name, re);
}

void remove_file_if_exists(const std::string& path) {
  if (path_exists(path) && !is_directory(path)) remove_all(path);
}

}  // namespace

WeightIndex read_weight_index(const std::string& path) {
  const nlohmann::json j = read_json_file(path);
  if (!j.is_object()) fail("{}: a weight index must be a JSON object", path);
  WeightIndex index;
  if (auto m = j.find("metadata"); m != j.end() && !m->is_null()) {
    if (!m->is_object()) fail("{}: \"metadata\" is not an object", path);
    if (auto t = m->find("total_size"); t != m->end()) {
      if (!t->is_number_unsigned() && !(t->is_number_float() && t->get<double>() >= 0))
        fail("{}: metadata.total_size is {}, not a byte count", path, t->dump());
      index.total_size =
          t->is_number_unsigned() ? t->get<uint64_t>() : static_cast<uint64_t>(t->get<double>());
    }
  }
  auto wm = j.find("weight_map");
  if (wm == j.end() || !wm->is_object())
    fail("{}: no \"weight_map\" object (tensor name -> shard file)", path);
  if (wm->empty()) fail("{}: the weight_map is empty", path);
  for (auto it = wm->begin(); it != wm->end(); ++it) {
    if (!it.value().is_string())
      fail("{}: weight_map entry '{}' is {}, not a file name", path, it.key(), it.value().dump());
    std::string file = it.value().get<std::string>();
    bool escapes = file.empty() || file[0] == '/' || file == ".." || file.rfind("../", 0) == 0 ||
                   file.find("/../") != std::string::npos || ends_with(file, "/..");
    if (escapes)
      fail("{}: weight_map entry '{}' names shard '{}', which is not a file inside the folder",
           path, it.key(), file);
    index.weight_map.emplace(it.key(), std::move(file));
  }
  return index;
}

void write_weight_index(const std::string& path, const WeightIndex& index,
                        uint64_t total_parameters) {
  nlohmann::json j;  // std::map objects: keys come out sorted, like json.dumps(sort_keys=True)
  j["metadata"] = {{"total_parameters", total_parameters}, {"total_size", index.total_size}};
  j["weight_map"] = nlohmann::json::object();
  for (const auto& [name, file] : index.weight_map) j["weight_map"][name] = file;
  write_file_atomic(path, j.dump(2) + "\n");
}

std::string shard_file_name(int k, int n) {
  return fmt::format("model-{:05d}-of-{:05d}.safetensors", k, n);
}

std::vector<std::pair<size_t, size_t>> plan_shards(const std::vector<uint64_t>& sizes,
                                                   uint64_t max_shard_bytes) {
  std::vector<std::pair<size_t, size_t>> shards;
  if (sizes.empty()) return shards;
  size_t begin = 0;
  uint64_t bytes = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (max_shard_bytes > 0 && i > begin && bytes + sizes[i] > max_shard_bytes) {
      shards.emplace_back(begin, i);
      begin = i;
      bytes = 0;
    }
    bytes += sizes[i];
  }
  shards.emplace_back(begin, sizes.size());
  return shards;
}

std::vector<std::string> save_weights(
    const std::string& dir, const std::vector<std::pair<std::string, torch::Tensor>>& tensors,
    uint64_t max_shard_bytes, const std::map<std::string, std::string>& metadata) {
  std::vector<uint64_t> sizes;
  uint64_t total_size = 0, total_parameters = 0;
  for (const auto& [name, t] : tensors) {
    if (!t.defined()) fail("cannot save weights in {}: tensor '{}' is undefined", dir, name);
    sizes.push_back(static_cast<uint64_t>(t.numel()) * t.element_size());
    total_size += sizes.back();
    total_parameters += static_cast<uint64_t>(t.numel());
  }
  auto shards = plan_shards(sizes, max_shard_bytes);
  std::vector<std::string> written;
  if (shards.size() <= 1) {
    save_safetensors(join_path(dir, kWeightsFile), tensors, metadata);
    written.push_back(kWeightsFile);
  } else {
    std::set<std::string> names;
    for (const auto& [name, t] : tensors)
      if (!names.insert(name).second)
        fail("cannot save weights in {}: duplicate tensor name '{}'", dir, name);
    WeightIndex index;
    index.total_size = total_size;
    const int n = static_cast<int>(shards.size());
    for (int k = 0; k < n; ++k) {
      std::string file = shard_file_name(k + 1, n);
      std::vector<std::pair<std::string, torch::Tensor>> part(tensors.begin() + shards[k].first,
                                                              tensors.begin() + shards[k].second);
      save_safetensors(join_path(dir, file), part, metadata);
      for (const auto& [name, t] : part) index.weight_map[name] = file;
      written.push_back(file);
    }
    write_weight_index(join_path(dir, kWeightsIndexFile), index, total_parameters);
    written.push_back(kWeightsIndexFile);
  }
  // Stale weights of an earlier save: transformers prefers model.safetensors over an index, so
  // one left beside new shards would shadow them.
  std::set<std::string> keep(written.begin(), written.end());
  for (const auto& name : list_dir(dir)) {
    bool weights = name == kWeightsFile || name == kWeightsIndexFile || is_shard_name(name);
    if (weights && !keep.count(name)) remove_file_if_exists(join_path(dir, name));
  }
  fsync_dir(dir);
  return written;
}

WeightFiles WeightFiles::open(const std::string& path) {
  WeightFiles w;
  std::string file = path;
  if (is_directory(path)) {
    std::string single = join_path(path, kWeightsFile), index = join_path(path, kWeightsIndexFile);
    if (path_exists(single)) {
      file = single;
    } else if (path_exists(index)) {
      file = index;
    } else {
      fail("no model weights in {} (neither {} nor {})", path, kWeightsFile, kWeightsIndexFile);
    }
  } else if (!path_exists(path)) {
    fail("no model weights at {}", path);
  }
  w.source_ = file;
  auto open_checked = [](const std::string& p) {
    SafetensorsFile f = SafetensorsFile::open(p);
    if (f.metadata().count(kSafetensorsChecksumKey)) verify_safetensors(p);
    return f;
  };
  if (!ends_with(file, ".index.json")) {
    w.files_.push_back(open_checked(file));
    for (const auto& name : w.files_[0].keys()) w.where_.emplace(name, 0);
    return w;
  }

  w.sharded_ = true;
  WeightIndex index = read_weight_index(file);
  const std::string dir = parent_dir(file);
  std::map<std::string, size_t> shard_slot;  // shard file (as the index names it) -> files_
  std::vector<std::string> shard_names;
  for (const auto& [name, shard] : index.weight_map) {
    if (shard_slot.count(shard)) continue;
    std::string p = join_path(dir, shard);
    if (!path_exists(p)) fail("{}: shard {} (holding tensor '{}') does not exist", file, p, name);
    shard_slot.emplace(shard, w.files_.size());
    shard_names.push_back(shard);
    w.files_.push_back(open_checked(p));
  }
  for (size_t s = 0; s < w.files_.size(); ++s) {
    for (const auto& name : w.files_[s].keys()) {
      auto [it, fresh] = w.where_.emplace(name, s);
      if (!fresh)
        fail("{}: tensor '{}' is in two shards, {} and {}", file, name, w.files_[it->second].path(),
             w.files_[s].path());
      auto listed = index.weight_map.find(name);
      if (listed == index.weight_map.end())
        fail("{}: shard {} holds tensor '{}', which the index does not list", file,
             w.files_[s].path(), name);
      if (listed->second != shard_names[s])
        fail("{}: tensor '{}' is listed in shard {} but found in shard {}", file, name,
             listed->second, w.files_[s].path());
    }
  }
  for (const auto& [name, shard] : index.weight_map)
    if (!w.files_[shard_slot.at(shard)].contains(name))
      fail("{}: tensor '{}' is listed in shard {}, which does not hold it", file, name,
           w.files_[shard_slot.at(shard)].path());
  return w;
}

std::vector<std::string> WeightFiles::names() const {
  std::vector<std::string> out;
  out.reserve(where_.size());
  for (const auto& [name, slot] : where_) out.push_back(name);
  return out;
}

const SafetensorsFile& WeightFiles::file_of(const std::string& name) const {
  auto it = where_.find(name);
  if (it == where_.end()) fail("{}: no tensor named '{}'", source_, name);
  return files_[it->second];
}

}  // namespace reef
