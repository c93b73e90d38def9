// Implementation of train/checkpointing.h.
#include "reef/train/checkpointing.h"

#include <ATen/CPUGeneratorImpl.h>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include <algorithm>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
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

}  // namespace

std::string capture_rng_state() {
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  auto t = gen.get_state();
  return to_hex(t.data_ptr<uint8_t>(), static_cast<size_t>(t.numel()));
}

void restore_rng_state(const std::string& hex) {
  auto bytes = from_hex(hex);
  auto t = torch::from_blob(bytes.data(), {static_cast<int64_t>(bytes.size())}, torch::kUInt8).clone();
  auto gen = at::detail::getDefaultCPUGenerator();
  std::lock_guard<std::mutex> lock(gen.mutex());
  gen.set_state(t);
}

std::string save_checkpoint(const std::string& run_dir, CausalLM& model, Optimizer* optimizer,
                            const Tokenizer& tokenizer, const Config& cfg, const TrainerState& state,
                            int64_t keep_last, const CheckpointWeightsWriter& write_weights) {
  int64_t opt_step = 0;
  NamedParams tensors;
  if (optimizer) tensors = optimizer->state_tensors(&opt_step);
  return save_checkpoint_named(run_dir, model, optimizer ? &tensors : nullptr, opt_step, tokenizer,
                               cfg, state, keep_last, write_weights);
}

std::string save_checkpoint_named(const std::string& run_dir, CausalLM& model, const NamedParams* optimizer_state,
                                  int64_t optimizer_step, const Tokenizer& tokenizer, const Config& cfg,
                                  const TrainerState& state, int64_t keep_last,
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

  nlohmann::json st = {
      {"format_version", kFormatVersion},
      {"step", state.step},
      {"tokens_seen", state.tokens_seen},
      {"data", {{"consumed_samples", state.consumed_samples},
                {"fingerprint", state.data_fingerprint},
                {"spec", state.data_spec}}},
      {"rng", {{"torch_cpu", state.rng_cpu_hex}}},
      {"scheduler", {{"lr", state.lr}, {"max_steps", cfg.train.max_steps}}},
      {"optimizer_step", opt_step},
      {"has_optimizer", optimizer_state != nullptr},
      {"files", files},
  };
  write_file_atomic(join_path(tmp, "trainer_state.json"), st.dump(2));
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

TrainerState load_checkpoint(const std::string& dir, CausalLM& model, Optimizer* optimizer,
                             bool load_weights) {
  std::map<std::string, torch::Tensor> t;
  TrainerState s = load_checkpoint_named(dir, model, optimizer ? &t : nullptr, load_weights);
  if (optimizer) optimizer->load_state_tensors(t, s.optimizer_step);
  return s;
}

TrainerState load_checkpoint_named(const std::string& dir, CausalLM& model,
                                   std::map<std::string, torch::Tensor>* optimizer_state,
                                   bool load_weights) {
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
    if (load_weights) load_model_weights(model, dir);
    TrainerState s;
    s.step = st.at("step").get<int64_t>();
    s.tokens_seen = st.at("tokens_seen").get<int64_t>();
    s.consumed_samples = st.at("data").at("consumed_samples").get<int64_t>();
    s.data_fingerprint = st.at("data").at("fingerprint").get<std::string>();
    s.data_spec = st.at("data").at("spec");
    s.rng_cpu_hex = st.at("rng").at("torch_cpu").get<std::string>();
    s.lr = st.at("scheduler").at("lr").get<double>();
    s.optimizer_step = st.at("optimizer_step").get<int64_t>();
    if (optimizer_state) {
      if (!st.value("has_optimizer", false))
        fail("checkpoint {} has no optimizer state (checkpoint.save_optimizer was false); "
             "cannot resume training from it", dir);
      *optimizer_state = load_safetensors(join_path(dir, "optimizer.safetensors"));
    }
    return s;
  } catch (const nlohmann::json::exception& e) {
    fail("corrupted checkpoint {}: trainer_state.json lacks a field ({})", dir, e.what());
  }
}

}  // namespace reef
