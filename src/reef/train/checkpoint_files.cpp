// Implementation of train/checkpoint_files.h.
#include "reef/train/checkpoint_files.h"

#include <ATen/CPUGeneratorImpl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/checkpoint/dist_checkpoint.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/safetensors.h"

namespace reef {
namespace {

constexpr int kFormatVersion = 2;  // 2: data position as consumed samples + fingerprint

std::string to_hex(const uint8_t* p, size_t n) {
  static const char* d = "0123456789abcdef";
  std::string s(n * 2, '0');
  for (size_t i = 0; i < n; ++i) {
    s[2 * i] = d[p[i] >> 4];
    s[2 * i + 1] = d[p[i] & 15];
  }
  return s;
}

std::vector<uint8_t> from_hex(const std::string& s) {
  auto v = [](char c) -> int {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;
  };
  if (s.size() % 2) fail("malformed hex string in trainer_state.json");
  std::vector<uint8_t> out(s.size() / 2);
  for (size_t i = 0; i < out.size(); ++i) {
    int hi = v(s[2 * i]), lo = v(s[2 * i + 1]);
    if (hi < 0 || lo < 0) fail("malformed hex string in trainer_state.json");
    out[i] = static_cast<uint8_t>(hi * 16 + lo);
  }
  return out;
}

nlohmann::json file_digest(const std::string& path) {
  auto m = MappedFile::open(path);
  return {{"bytes", m->size()}, {"xxh64", hex64(xxh64(m->data(), m->size()))}};
}

int64_t step_of(const std::string& name) {
  if (name.rfind("step_", 0) != 0) return -1;
  std::string n = name.substr(5);
  if (n.empty() || n.find_first_not_of("0123456789") != std::string::npos) return -1;
  return std::stoll(n);
}

nlohmann::json trainer_state_json(const TrainerState& state, const Config& cfg, int64_t opt_step,
                                  bool has_optimizer, const nlohmann::json& files) {
  return {
      {"format_version", kFormatVersion},
      {"step", state.step},
      {"tokens_seen", state.tokens_seen},
      {"data",
       {{"consumed_samples", state.consumed_samples},
        {"fingerprint", state.data_fingerprint},
        {"spec", state.data_spec}}},
      {"rng", {{"torch_cpu", state.rng_cpu_hex}}},
      {"scheduler", {{"lr", state.lr}, {"max_steps", cfg.train.max_steps}}},
      {"optimizer_step", opt_step},
      {"has_optimizer", has_optimizer},
      {"files", files},
  };
}

// Renames the finished `tmp` folder to `final_dir` and keeps the newest `keep_last` of `root`.
void publish(const std::string& root, const std::string& tmp, const std::string& final_dir,
             int64_t keep_last) {
  fsync_dir(tmp);
  if (path_exists(final_dir)) remove_all(final_dir);  // re-saving the same step after a resume
  rename_path(tmp, final_dir);
  fsync_dir(root);
  if (keep_last > 0) {
    std::vector<std::pair<int64_t, std::string>> all;
    for (const auto& e : list_dir(root))
      if (step_of(e) >= 0) all.emplace_back(step_of(e), e);
    std::sort(all.begin(), all.end());
    for (size_t i = 0; i + static_cast<size_t>(keep_last) < all.size(); ++i)
      remove_all(join_path(root, all[i].second));
  }
  // Leftovers of writers that were killed mid-save.
  for (const auto& e : list_dir(root))
    if (e.rfind(".tmp-", 0) == 0) remove_all(join_path(root, e));
}

// Resets the kernel's record of this process's peak RSS (Linux: /proc/self/clear_refs "5"), so
// that peak_rss_mb() then reports the peak since; false where that is not possible.
bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return std::fclose(f) == 0 && ok;
}

// A "Vm...:" figure of /proc/self/status in MB (VmHWM: peak RSS, VmRSS: current); 0 if unknown.
double proc_status_mb(const char* key) {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return 0;
  char line[256];
  double kb = 0;
  const size_t n = std::strlen(key);
  while (std::fgets(line, sizeof line, f))
    if (std::strncmp(line, key, n) == 0 && line[n] == ':') {
      kb = std::atof(line + n + 1);
      break;
    }
  std::fclose(f);
  return kb / 1024.0;
}

// A flat piece as a distributed checkpoint's piece of `group`: the whole tensor when it covers
// it, otherwise its flat range.
LocalPiece local_piece(const FlatPiece& f, const std::string& group) {
  if (f.whole()) return {f.name, group, f.shape, TensorSlice::whole(f.shape), f.data.view(f.shape)};
  return {f.name, group, f.shape, TensorSlice::flat_range(f.begin, f.length), f.data};
}

}  // namespace

TensorSlice part_of(const ShardedParam& p) {
  std::vector<int64_t> off = p.offsets;
  if (off.empty()) off.assign(p.global_shape.size(), 0);
  return TensorSlice::of_box(off, p.local.sizes().vec());
}

std::string timed_save(bool distributed, const std::function<std::string()>& save) {
  const double rss_before = proc_status_mb("VmRSS");
  const bool peak_known = reset_peak_rss();
  const auto t0 = std::chrono::steady_clock::now();
  std::string path = save();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log_info("checkpoint {} ({}) saved in {:.3f} s; RSS {:.1f} MB before, peak {} during the save",
           path, distributed ? "distributed" : "consolidated", s, rss_before,
           peak_known ? fmt::format("{:.1f} MB", proc_status_mb("VmHWM")) : std::string("unknown"));
  return path;
}

std::string capture_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto t = gen.get_state();
  return to_hex(t.data_ptr<uint8_t>(), static_cast<size_t>(t.numel()));
}

void restore_rng_state(const std::string& hex) {
  auto bytes = from_hex(hex);
  auto t =
      torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, torch::kUInt8).clone();
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(t);
}

std::string write_consolidated_checkpoint(const std::string& run_dir, CausalLM& model,
                                          const NamedParams* optimizer_state,
                                          int64_t optimizer_step, const Tokenizer& tokenizer,
                                          const Config& cfg, const TrainerState& state,
                                          int64_t keep_last,
                                          const CheckpointWeightsWriter& write_weights) {
  std::string root = join_path(run_dir, "checkpoints");
  make_dirs(root);
  std::string name = "step_" + std::to_string(state.step);
  std::string final_dir = join_path(root, name);
  std::string tmp = join_path(root, ".tmp-" + name + "-" + std::to_string(::getpid()));
  if (path_exists(tmp)) remove_all(tmp);
  make_dirs(tmp);

  std::vector<std::string> names = {"tokenizer.json", "tokenizer_config.json"};
  if (write_weights) {
    tokenizer.save(tmp);
    for (auto& n : write_weights(tmp)) names.push_back(std::move(n));
  } else {
    save_model_folder(tmp, model, &tokenizer);
    names.insert(names.end(), {"model.safetensors", "config.json", "generation_config.json"});
  }
  nlohmann::json files = nlohmann::json::object();
  const int64_t opt_step = optimizer_state ? optimizer_step : 0;
  if (optimizer_state) {
    save_safetensors(join_path(tmp, "optimizer.safetensors"), *optimizer_state,
                     {{"format", "pt"}, {"step", std::to_string(opt_step)}});
    names.push_back("optimizer.safetensors");
  }
  write_file_atomic(join_path(tmp, "config.yaml"), config_to_yaml(cfg));
  names.push_back("config.yaml");
  for (const auto& n : names) files[n] = file_digest(join_path(tmp, n));

  nlohmann::json st = trainer_state_json(state, cfg, opt_step, optimizer_state != nullptr, files);
  write_file_atomic(join_path(tmp, "trainer_state.json"), st.dump(2));
  publish(root, tmp, final_dir, keep_last);
  return final_dir;
}

bool writes_distributed_checkpoints(const CheckpointConfig& c, int world_size) {
  return c.layout == "distributed" || (c.layout == "auto" && world_size > 1);
}

std::string write_distributed_checkpoint(const std::string& run_dir, CausalLM& model,
                                         const std::vector<ShardedParam>& params,
                                         const std::vector<FlatPiece>& flat_params,
                                         Optimizer* optimizer, const Tokenizer& tokenizer,
                                         const Config& cfg, const TrainerState& state,
                                         int64_t keep_last, ProcessGroup* pg) {
  const int rank = pg ? pg->rank() : 0;
  const std::string root = join_path(run_dir, "checkpoints");
  const std::string name = "step_" + std::to_string(state.step);
  const std::string final_dir = join_path(root, name);
  // One temp folder for all ranks (they share the file system), created by rank 0.
  const std::string tmp = join_path(root, ".tmp-" + name + "-dist");

  // Model parameters: the parts of each replica set spread over its ranks by size.
  std::map<std::string, std::vector<size_t>> by_tag;  // tag -> indices into params
  for (size_t i = 0; i < params.size(); ++i)
    if (params[i].write) by_tag[params[i].replicas].push_back(i);
  std::vector<bool> writes(params.size(), false);
  for (const auto& [tag, idx] : by_tag) {
    std::vector<uint64_t> bytes;
    for (size_t i : idx) bytes.push_back(params[i].local.nbytes());
    const int n = params[idx.front()].n_replicas, me = params[idx.front()].replica_index;
    const std::vector<int> owner = balance_owners(bytes, n);
    for (size_t k = 0; k < idx.size(); ++k) writes[idx[k]] = owner[k] == me;
  }
  std::vector<LocalPiece> pieces;
  for (const FlatPiece& f : flat_params) pieces.push_back(local_piece(f, "model"));
  std::map<std::string, size_t> param_of;
  for (size_t i = 0; i < params.size(); ++i) {
    const ShardedParam& p = params[i];
    param_of[p.name] = i;
    if (writes[i]) pieces.push_back({p.name, "model", p.global_shape, part_of(p), p.local});
  }
  // Optimizer state: ZeRO-1 slices (as flat ranges of a whole tensor, or boxes of a part);
  // replicated moments by the parameter's writer.
  int64_t opt_step = 0;
  if (optimizer) {
    for (auto& sp : optimizer->local_state(&opt_step)) {
      const std::string param = sp.name.substr(0, sp.name.rfind(".exp_avg"));
      auto it = param_of.find(param);
      if (it == param_of.end()) {  // FSDP: this rank's slices of whole tensors
        if (!optimizer->sharded())
          fail("checkpoint: optimizer state {} of no parameter (internal error)", sp.name);
        pieces.push_back(local_piece(sp, "optimizer"));
        continue;
      }
      const ShardedParam& p = params[it->second];
      if (optimizer->sharded() ? !(p.write && p.write_zero_slices) : !writes[it->second]) continue;
      const TensorSlice box = part_of(p);
      if (sp.whole()) {
        pieces.push_back({sp.name, "optimizer", p.global_shape, box, sp.data.view(sp.shape)});
      } else if (box.is_whole(p.global_shape)) {
        pieces.push_back({sp.name, "optimizer", p.global_shape,
                          TensorSlice::flat_range(sp.begin, sp.length), sp.data});
      } else {  // a run of a part's elements: the boxes it covers, moved to the part's place
        for (const SlicePart& part :
             slice_parts(sp.shape, TensorSlice::flat_range(sp.begin, sp.length))) {
          std::vector<int64_t> off = part.box.offsets;
          for (size_t d = 0; d < off.size(); ++d) off[d] += box.box.offsets[d];
          pieces.push_back({sp.name, "optimizer", p.global_shape,
                            TensorSlice::of_box(off, part.box.lengths),
                            sp.data.narrow(0, part.at, part.box.numel()).view(part.box.lengths)});
        }
      }
    }
  }

  if (rank == 0) {
    make_dirs(root);
    if (path_exists(tmp)) remove_all(tmp);
    make_dirs(tmp);
    save_model_config(tmp, model, &tokenizer);
    write_file_atomic(join_path(tmp, "config.yaml"), config_to_yaml(cfg));
    nlohmann::json files = nlohmann::json::object();
    for (const char* n : {"config.json", "generation_config.json", "tokenizer.json",
                          "tokenizer_config.json", "config.yaml"})
      files[n] = file_digest(join_path(tmp, n));
    nlohmann::json st = trainer_state_json(state, cfg, opt_step, optimizer != nullptr, files);
    st["layout"] = "distributed";
    write_file_atomic(join_path(tmp, "trainer_state.json"), st.dump(2));
  }
  if (pg) pg->barrier();              // the folder exists
  save_dist_pieces(tmp, pieces, pg);  // every rank's file, then rank 0's index: written last
  if (rank == 0) publish(root, tmp, final_dir, keep_last);
  if (pg) pg->barrier();  // nobody moves on before the checkpoint is in place
  return final_dir;
}

std::optional<std::string> latest_checkpoint(const std::string& run_dir) {
  std::string root = join_path(run_dir, "checkpoints");
  if (!is_directory(root)) return std::nullopt;
  int64_t best = -1;
  std::string best_name;
  for (const auto& e : list_dir(root)) {
    int64_t s = step_of(e);
    if (s > best) best = s, best_name = e;
  }
  if (best < 0) return std::nullopt;
  return join_path(root, best_name);
}

TrainerState read_checkpoint(const std::string& dir, const CheckpointReader& read_weights,
                             const CheckpointReader& read_optimizer) {
  std::string state_path = join_path(dir, "trainer_state.json");
  if (!path_exists(state_path)) fail("incomplete checkpoint {}: no trainer_state.json", dir);
  nlohmann::json st;
  try {
    st = nlohmann::json::parse(read_file(state_path));
  } catch (const nlohmann::json::parse_error& e) {
    fail("corrupted checkpoint {}: trainer_state.json is not valid JSON ({})", dir, e.what());
  }
  try {
    if (st.at("format_version").get<int>() != kFormatVersion)
      fail("checkpoint {} has format_version {}; this reef reads {}", dir,
           st.at("format_version").dump(), kFormatVersion);
    for (const auto& [name, want] : st.at("files").items()) {
      std::string p = join_path(dir, name);
      if (!path_exists(p)) fail("incomplete checkpoint {}: {} is missing", dir, name);
      auto got = file_digest(p);
      if (got["bytes"] != want.at("bytes"))
        fail("corrupted checkpoint {}: {} is {} bytes, expected {} (truncated?)", dir, name,
             got["bytes"].dump(), want.at("bytes").dump());
      if (got["xxh64"] != want.at("xxh64"))
        fail("corrupted checkpoint {}: {} checksum mismatch (xxh64 {} != {})", dir, name,
             got["xxh64"].get<std::string>(), want.at("xxh64").get<std::string>());
    }
    const bool distributed = st.value("layout", "consolidated") == "distributed";
    std::optional<DistCheckpoint> ck;
    if (distributed) {
      ck = DistCheckpoint::open(dir);  // the index, every file's size, every piece's header
    }
    if (read_weights)
      read_weights(dir, ck ? &*ck : nullptr, st.at("optimizer_step").get<int64_t>());
    TrainerState s;
    s.step = st.at("step").get<int64_t>();
    s.tokens_seen = st.at("tokens_seen").get<int64_t>();
    s.consumed_samples = st.at("data").at("consumed_samples").get<int64_t>();
    s.data_fingerprint = st.at("data").at("fingerprint").get<std::string>();
    s.data_spec = st.at("data").at("spec");
    s.rng_cpu_hex = st.at("rng").at("torch_cpu").get<std::string>();
    s.lr = st.at("scheduler").at("lr").get<double>();
    s.optimizer_step = st.at("optimizer_step").get<int64_t>();
    if (read_optimizer) {
      if (!st.value("has_optimizer", false))
        fail(
            "checkpoint {} has no optimizer state (checkpoint.save_optimizer was false); "
            "cannot resume training from it",
            dir);
      read_optimizer(dir, ck ? &*ck : nullptr, s.optimizer_step);
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("corrupted checkpoint {}: trainer_state.json lacks a field ({})", dir, e.what());
  }
}

}  // namespace reef
