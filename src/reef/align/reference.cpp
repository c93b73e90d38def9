// Implementation of align/reference.h. The cache file: "REEFREF1", the pair count (int64), then
// chosen and rejected log-probs (float32, one per pair), little-endian as the machine writes.
#include "reef/align/reference.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "reef/align/dpo_loss.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"
#include "reef/parallel/strategy.h"
#include "reef/train/batches.h"

namespace reef {
namespace {

constexpr char kMagic[] = "REEFREF1";

std::string encode_cache(const ReferenceLogps& r) {
  const int64_t n = static_cast<int64_t>(r.chosen.size());
  std::string out(kMagic, 8);
  out.append(reinterpret_cast<const char*>(&n), sizeof(n));
  out.append(reinterpret_cast<const char*>(r.chosen.data()), r.chosen.size() * sizeof(float));
  out.append(reinterpret_cast<const char*>(r.rejected.data()), r.rejected.size() * sizeof(float));
  return out;
}

ReferenceLogps decode_cache(const std::string& path, int64_t pairs) {
  const std::string data = read_file(path);
  int64_t n = -1;
  if (data.size() >= 16) std::memcpy(&n, data.data() + 8, sizeof(n));
  if (data.compare(0, 8, kMagic) != 0 || n != pairs ||
      data.size() != 16 + 2 * static_cast<size_t>(n) * sizeof(float))
    usage_error(
        "{}: not a reference log-prob cache for these {} pairs; delete it to recompute the "
        "reference",
        path, pairs);
  ReferenceLogps r;
  r.chosen.resize(static_cast<size_t>(n));
  r.rejected.resize(static_cast<size_t>(n));
  std::memcpy(r.chosen.data(), data.data() + 16, r.chosen.size() * sizeof(float));
  std::memcpy(r.rejected.data(), data.data() + 16 + r.chosen.size() * sizeof(float),
              r.rejected.size() * sizeof(float));
  r.path = path;
  r.from_cache = true;
  return r;
}

}  // namespace

uint64_t weights_fingerprint(CausalLM& model) {
  torch::NoGradGuard ng;
  uint64_t h = xxh64("reef-weights-v1");
  auto add = [&](const std::string& name, const torch::Tensor& t) {
    auto v = t.detach().to(torch::kCPU, torch::kFloat).contiguous();
    std::vector<uint64_t> parts = {h, xxh64(name)};
    for (int64_t d : v.sizes()) parts.push_back(static_cast<uint64_t>(d));
    parts.push_back(xxh64(v.data_ptr(), static_cast<size_t>(v.numel()) * sizeof(float)));
    h = xxh64(parts.data(), parts.size() * sizeof(uint64_t));
  };
  for (const auto& p : model->named_parameters()) add(p.key(), p.value());
  for (const auto& b : model->named_buffers()) add(b.key(), b.value());
  return h;
}

ReferenceLogps compute_reference_logps(CausalLM& model, const PreferenceRows& rows,
                                       int64_t batch_size, const torch::Device& device, bool bf16) {
  torch::NoGradGuard ng;
  const bool was_training = model->is_training();
  model->eval();
  model->to(device);
  // The used pairs once each, in file order: the rows of a source that neither shuffles nor
  // repeats reach each pair through pair_of.
  ReferenceLogps r;
  const auto nan = std::numeric_limits<float>::quiet_NaN();
  r.chosen.assign(static_cast<size_t>(rows.num_pairs()), nan);
  r.rejected.assign(static_cast<size_t>(rows.num_pairs()), nan);
  const int64_t V = model->config().vocab_size;
  // The epoch order of `rows` may be shuffled: map its first epoch back to pairs.
  const int64_t n_rows = rows.stats().rows_per_epoch;
  for (int64_t first = 0; first < n_rows; first += batch_size) {
    const int64_t n = std::min(batch_size, n_rows - first);
    TrainBatch b = make_train_batch(rows, first, n, V, device);  // padding columns dropped
    mark_head_positions(b);  // the LM head at the answers' tokens only
    ModelOutputs out = forward_batch(model, b, bf16);
    PairLogps lp = pair_logps(out, b);
    auto c = lp.chosen.to(torch::kCPU), j = lp.rejected.to(torch::kCPU);
    for (int64_t i = 0; i < n; ++i) {
      const auto k = static_cast<size_t>(rows.pair_of(first + i));
      r.chosen[k] = c[i].item<float>();
      r.rejected[k] = j[i].item<float>();
    }
  }
  if (was_training) model->train();
  return r;
}

ReferenceLogps cached_reference_logps(CausalLM& model, const PreferenceRows& rows,
                                      const std::string& dir, int64_t batch_size,
                                      const torch::Device& device, ProcessGroup* pg, bool bf16) {
  // fp32 keys are the pairs and the weights; a bf16 reference has a key of its own.
  uint64_t parts[3] = {rows.pairs_fingerprint(), weights_fingerprint(model), xxh64("bf16")};
  const std::string path =
      join_path(dir, hex64(xxh64(parts, bf16 ? sizeof(parts) : 2 * sizeof(uint64_t))) + ".bin");
  const bool writer = !pg || pg->rank() == 0;
  if (path_exists(path)) {
    ReferenceLogps r = decode_cache(path, rows.num_pairs());
    log_info("dpo: reference log-probs of {} pairs read from {}", rows.stats().rows_per_epoch,
             path);
    return r;
  }
  ReferenceLogps r;
  if (writer) {
    log_info("dpo: computing the reference log-probs of {} pairs", rows.stats().rows_per_epoch);
    r = compute_reference_logps(model, rows, batch_size, device, bf16);
    make_dirs(dir);
    write_file_atomic(path, encode_cache(r));
    r.path = path;
    log_info("dpo: reference log-probs cached in {}", path);
  }
  if (pg) {
    pg->barrier();
    if (!writer) r = decode_cache(path, rows.num_pairs());
  }
  return r;
}

}  // namespace reef
