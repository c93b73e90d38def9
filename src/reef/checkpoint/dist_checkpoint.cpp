// Implementation of checkpoint/dist_checkpoint.h.
#include "reef/checkpoint/dist_checkpoint.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <filesystem>
#include <mutex>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/parallel/process_group.h"

namespace reef {
namespace {

constexpr const char* kPiecesKey = "reef.pieces";
constexpr const char* kFormatName = "reef-distributed-checkpoint";

nlohmann::json slice_json(const TensorSlice& s) {
  if (s.flat) return {{"flat", {s.start, s.length}}};
  return {{"offsets", s.box.offsets}, {"lengths", s.box.lengths}};
}

TensorSlice slice_from_json(const nlohmann::json& j) {
  if (j.contains("flat")) {
    const auto& f = j.at("flat");
    if (!f.is_array() || f.size() != 2)
      fail("malformed piece {}: flat must be [start, length]", j.dump());
    return TensorSlice::flat_range(f[0].get<int64_t>(), f[1].get<int64_t>());
  }
  auto off = j.at("offsets").get<std::vector<int64_t>>();
  auto len = j.at("lengths").get<std::vector<int64_t>>();
  if (off.size() != len.size())
    fail("malformed piece {}: offsets and lengths differ in rank", j.dump());
  return TensorSlice::of_box(std::move(off), std::move(len));
}

std::string shape_str(const std::vector<int64_t>& shape) {
  return "[" + fmt::format("{}", fmt::join(shape, ", ")) + "]";
}

// `t` narrowed to box `part` of the tensor, where `t` holds box `whole`.
torch::Tensor narrow_to(torch::Tensor t, const Box& part, const Box& whole) {
  for (size_t d = 0; d < part.offsets.size(); ++d)
    t = t.narrow(static_cast<int64_t>(d), part.offsets[d] - whole.offsets[d], part.lengths[d]);
  return t;
}

// The local data of one part of a slice: the data itself for a box, a run of it for a flat range.
torch::Tensor part_view(const torch::Tensor& data, const TensorSlice& s, const SlicePart& p) {
  if (!s.flat) return data;
  return data.narrow(0, p.at, p.box.numel()).view(p.box.lengths);
}

}  // namespace

std::string dist_rank_file(int rank) { return fmt::format("rank-{:05d}.safetensors", rank); }

std::string write_rank_pieces(const std::string& dir, int rank,
                              const std::vector<LocalPiece>& pieces) {
  if (pieces.empty()) return "";
  const std::string file = dist_rank_file(rank);
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  nlohmann::json listed = nlohmann::json::array();
  std::set<std::string> keys;
  for (const auto& p : pieces) {
    slice_parts(p.global_shape, p.slice);  // throws when outside the tensor
    const auto want = p.slice.local_shape();
    if (!p.data.defined() || !p.data.sizes().equals(want))
      fail("cannot save {} piece {} of '{}': its data has shape {}, expected {}", file,
           p.slice.str(), p.name, p.data.defined() ? c10::str(p.data.sizes()) : "undefined",
           shape_str(want));
    const std::string key =
        p.slice.is_whole(p.global_shape) ? p.name : p.name + "@" + p.slice.str();
    if (!keys.insert(key).second)
      fail("cannot save {}: piece {} of '{}' given twice", file, p.slice.str(), p.name);
    tensors.emplace_back(key, p.data);
    nlohmann::json j = {
        {"name", p.name}, {"group", p.group}, {"shape", p.global_shape}, {"key", key}};
    j.update(slice_json(p.slice));
    listed.push_back(std::move(j));
  }
  save_safetensors(join_path(dir, file), tensors, {{"format", "pt"}, {kPiecesKey, listed.dump()}},
                   /*checksum=*/true);
  return file;
}

void write_dist_index(const std::string& dir, int world_size, const std::vector<int>& writers) {
  nlohmann::json files = nlohmann::json::object();
  nlohmann::json tensors = nlohmann::json::object();
  std::map<std::string, std::vector<TensorSlice>> slices;
  std::map<std::string, std::string> first_file;
  for (int r : writers) {
    const std::string file = dist_rank_file(r), path = join_path(dir, file);
    if (!path_exists(path)) fail("distributed checkpoint {}: rank {} wrote no {}", dir, r, file);
    const SafetensorsFile f = SafetensorsFile::open(path);
    const auto& meta = f.metadata();
    auto pieces_it = meta.find(kPiecesKey);
    auto sum_it = meta.find(kSafetensorsChecksumKey);
    if (pieces_it == meta.end() || sum_it == meta.end())
      fail("{}: not a piece file of a distributed checkpoint (no {} / {} metadata)", path,
           kPiecesKey, kSafetensorsChecksumKey);
    files[file] = {{"rank", r},
                   {"bytes", static_cast<uint64_t>(std::filesystem::file_size(path))},
                   {"xxh64", sum_it->second}};
    for (const auto& p : nlohmann::json::parse(pieces_it->second)) {
      const std::string name = p.at("name").get<std::string>(),
                        key = p.at("key").get<std::string>();
      const std::string dtype = safetensors_dtype_name(f.dtype(key));
      auto& t = tensors[name];
      if (t.is_null()) {
        t = {{"group", p.at("group")},
             {"dtype", dtype},
             {"shape", p.at("shape")},
             {"pieces", nlohmann::json::array()}};
        first_file[name] = file;
      } else if (t["group"] != p.at("group") || t["dtype"] != dtype ||
                 t["shape"] != p.at("shape")) {
        fail("distributed checkpoint {}: tensor '{}' is {} {} {} in {} but {} {} {} in {}", dir,
             name, t["group"].get<std::string>(), t["dtype"].get<std::string>(), t["shape"].dump(),
             first_file[name], p.at("group").get<std::string>(), dtype, p.at("shape").dump(), file);
      }
      nlohmann::json piece = {{"file", file}, {"key", key}};
      for (const char* k : {"offsets", "lengths", "flat"})
        if (p.contains(k)) piece[k] = p[k];
      t["pieces"].push_back(piece);
      slices[name].push_back(slice_from_json(p));
    }
  }
  for (const auto& [name, t] : tensors.items()) {
    const std::string why = check_cover(t["shape"].get<std::vector<int64_t>>(), slices[name]);
    if (!why.empty()) fail("distributed checkpoint {}: tensor '{}': {}", dir, name, why);
  }
  nlohmann::json index = {{"format", kFormatName},
                          {"version", kDistFormatVersion},
                          {"world_size", world_size},
                          {"files", files},
                          {"tensors", tensors}};
  write_file_atomic(join_path(dir, kDistIndexFile), index.dump(1) + "\n");
}

void save_dist_pieces(const std::string& dir, const std::vector<LocalPiece>& pieces,
                      ProcessGroup* pg) {
  const int rank = pg ? pg->rank() : 0, world = pg ? pg->size() : 1;
  const std::string file = write_rank_pieces(dir, rank, pieces);
  auto wrote = torch::zeros({world}, torch::kInt64);
  wrote[rank] = file.empty() ? 0 : 1;
  if (pg) pg->all_reduce_sum(wrote);  // also the barrier: every file is in place after it
  if (rank != 0) return;
  std::vector<int> writers;
  for (int r = 0; r < world; ++r)
    if (wrote[r].item<int64_t>() > 0) writers.push_back(r);
  write_dist_index(dir, world, writers);
}

bool looks_distributed(const std::string& dir) {
  if (!is_directory(dir)) return false;
  if (path_exists(join_path(dir, kDistIndexFile))) return true;
  for (const auto& e : list_dir(dir))
    if (e.rfind("rank-", 0) == 0 && e.size() > 12 && e.substr(e.size() - 12) == ".safetensors")
      return true;
  return false;
}

struct DistCheckpoint::Cache {
  std::mutex mu;
  std::map<std::string, SafetensorsFile> files;
  std::set<std::string> verified;
};

std::string DistCheckpoint::index_path() const { return join_path(dir_, kDistIndexFile); }

DistCheckpoint DistCheckpoint::open(const std::string& dir) {
  DistCheckpoint ck;
  ck.dir_ = dir;
  ck.cache_ = std::make_shared<Cache>();
  const std::string index = ck.index_path();
  if (!path_exists(index)) {
    if (looks_distributed(dir))
      fail("incomplete checkpoint {}: {} is missing (the save was interrupted?)", dir,
           kDistIndexFile);
    fail("{} is not a distributed checkpoint: no {}", dir, kDistIndexFile);
  }
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(index));
  } catch (const nlohmann::json::parse_error& e) {
    fail("corrupted checkpoint {}: {} is not valid JSON ({})", dir, kDistIndexFile, e.what());
  }
  try {
    if (j.at("format") != kFormatName || j.at("version").get<int>() != kDistFormatVersion)
      fail("{}: format {} version {}; this reef reads {} version {}", index, j.at("format").dump(),
           j.at("version").dump(), kFormatName, kDistFormatVersion);
    for (const auto& [file, info] : j.at("files").items()) {
      if (file.find('/') != std::string::npos || file == "..")
        fail("{}: file name '{}' must be a plain name in the folder", index, file);
      const std::string path = join_path(dir, file);
      if (!path_exists(path)) fail("incomplete checkpoint {}: {} is missing", dir, file);
      const auto bytes = static_cast<uint64_t>(std::filesystem::file_size(path));
      if (bytes != info.at("bytes").get<uint64_t>())
        fail("corrupted checkpoint {}: {} is {} bytes, expected {} (truncated?)", dir, file, bytes,
             info.at("bytes").get<uint64_t>());
      SafetensorsFile f = SafetensorsFile::open(path);
      const auto& meta = f.metadata();
      auto sum = meta.find(kSafetensorsChecksumKey);
      const std::string want = info.at("xxh64").get<std::string>();
      if (sum == meta.end() || sum->second != want)
        fail("corrupted checkpoint {}: {} records checksum {}, the index {}", dir, file,
             sum == meta.end() ? "none" : sum->second, want);
      ck.xxh64_[file] = want;
      ck.cache_->files.emplace(file, std::move(f));
    }
    for (const auto& [name, t] : j.at("tensors").items()) {
      Tensor tensor;
      tensor.group = t.at("group").get<std::string>();
      tensor.shape = t.at("shape").get<std::vector<int64_t>>();
      const std::string dtype = t.at("dtype").get<std::string>();
      std::vector<TensorSlice> slices;
      for (const auto& p : t.at("pieces")) {
        Piece piece{p.at("file").get<std::string>(), p.at("key").get<std::string>(),
                    slice_from_json(p)};
        auto f = ck.cache_->files.find(piece.file);
        if (f == ck.cache_->files.end())
          fail("{}: tensor '{}' has a piece in {}, which the index does not list", index, name,
               piece.file);
        if (!f->second.contains(piece.key))
          fail("corrupted checkpoint {}: {} has no tensor '{}' (a piece of '{}')", dir, piece.file,
               piece.key, name);
        const auto& e = f->second.entry(piece.key);
        if (safetensors_dtype_name(e.dtype) != dtype || e.shape != piece.slice.local_shape())
          fail("corrupted checkpoint {}: '{}' in {} is {} {}, the index says {} {}", dir, piece.key,
               piece.file, safetensors_dtype_name(e.dtype), shape_str(e.shape), dtype,
               shape_str(piece.slice.local_shape()));
        tensor.dtype = e.dtype;
        slices.push_back(piece.slice);
        tensor.pieces.push_back(std::move(piece));
      }
      const std::string why = check_cover(tensor.shape, slices);
      if (!why.empty()) fail("incomplete checkpoint {}: tensor '{}': {}", dir, name, why);
      ck.tensors_.emplace(name, std::move(tensor));
    }
  } catch (const nlohmann::json::exception& e) {
    fail("corrupted checkpoint {}: {} lacks a field or has a wrong type ({})", dir, kDistIndexFile,
         e.what());
  }
  return ck;
}

std::vector<std::string> DistCheckpoint::names(const std::string& group) const {
  std::vector<std::string> out;
  for (const auto& [name, t] : tensors_)
    if (group.empty() || t.group == group) out.push_back(name);
  return out;
}

const DistCheckpoint::Tensor& DistCheckpoint::tensor(const std::string& name) const {
  auto it = tensors_.find(name);
  if (it == tensors_.end()) fail("{}: no tensor '{}'", index_path(), name);
  return it->second;
}

const SafetensorsFile& DistCheckpoint::file(const std::string& name) const {
  std::lock_guard<std::mutex> lock(cache_->mu);
  const SafetensorsFile& f = cache_->files.at(name);
  if (cache_->verified.insert(name).second) {
    try {
      verify_safetensors(f.path());
    } catch (...) {
      cache_->verified.erase(name);
      throw;
    }
  }
  return f;
}

std::set<std::string> DistCheckpoint::files_read() const {
  std::lock_guard<std::mutex> lock(cache_->mu);
  return cache_->verified;
}

void DistCheckpoint::read_into(const std::string& name, const TensorSlice& slice,
                               torch::Tensor out) const {
  const Tensor& t = tensor(name);
  if (!out.sizes().equals(slice.local_shape()))
    fail("reading {} of '{}': the destination has shape {}, expected {}", slice.str(), name,
         c10::str(out.sizes()), shape_str(slice.local_shape()));
  std::vector<SlicePart> want;
  try {
    want = slice_parts(t.shape, slice);
  } catch (const Error& e) {
    fail("reading '{}' from {}: {}", name, dir_, e.what());
  }
  torch::NoGradGuard no_grad;
  int64_t copied = 0;
  for (const auto& piece : t.pieces) {
    const auto have = slice_parts(t.shape, piece.slice);
    bool meets = false;
    for (const auto& h : have)
      for (const auto& w : want) meets = meets || intersect(h.box, w.box).has_value();
    if (!meets) continue;
    const SafetensorsFile& f = file(piece.file);
    const torch::Tensor src = f.tensor(piece.key);
    for (const auto& h : have) {
      const torch::Tensor hv = part_view(src, piece.slice, h);
      for (const auto& w : want) {
        auto common = intersect(h.box, w.box);
        if (!common) continue;
        narrow_to(part_view(out, slice, w), *common, w.box).copy_(narrow_to(hv, *common, h.box));
        copied += common->numel();
      }
    }
    const auto* p = static_cast<const uint8_t*>(src.data_ptr());
    if (p >= f.data() && p + src.nbytes() <= f.data() + f.data_size())
      release_mapped_pages(p, src.nbytes());
  }
  if (copied != slice.numel())  // the index was checked to cover every tensor: an internal error
    fail("reading {} of '{}' from {}: the pieces gave {} of {} elements", slice.str(), name, dir_,
         copied, slice.numel());
}

torch::Tensor DistCheckpoint::read(const std::string& name, const TensorSlice& slice) const {
  auto out = torch::empty(slice.local_shape(), torch::TensorOptions().dtype(tensor(name).dtype));
  read_into(name, slice, out);
  return out;
}

}  // namespace reef
