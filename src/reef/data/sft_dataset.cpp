// Implementation of data/sft_dataset.h.
#include "reef/data/sft_dataset.h"

#include <algorithm>
#include <numeric>
#include <random>

#include "reef/base/error.h"
#include "reef/base/hash.h"
#include "reef/base/log.h"

namespace reef {
namespace {

// Supervised targets among the first n tokens of sample s (token 0 is never a target).
int64_t supervised_in(const SftSample& s, int64_t n) {
  int64_t c = 0;
  for (int64_t t = 1; t < n; ++t) c += s.loss_mask[static_cast<size_t>(t)] ? 1 : 0;
  return c;
}

}  // namespace

SftRows::SftRows(std::shared_ptr<const std::vector<SftSample>> samples,
                 const SftRowOptions& options)
    : samples_(std::move(samples)), opt_(options) {
  const auto& all = *samples_;
  const int64_t row_len = opt_.seq_len + 1;
  if (opt_.seq_len <= 0) fail("SFT rows need seq_len > 0 (internal error)");
  stats_.samples = static_cast<int64_t>(all.size());
  length_.assign(all.size(), 0);
  for (size_t i = 0; i < all.size(); ++i) {
    const SftSample& s = all[i];
    int64_t n = static_cast<int64_t>(s.input_ids.size());
    if (n > row_len) {
      if (opt_.overlong == "error")
        usage_error(
            "{}: the sample has {} tokens, more than data.seq_len + 1 = {}; raise data.seq_len "
            "or set data.overlong to drop or truncate",
            s.source, n, row_len);
      if (opt_.overlong == "truncate") {
        n = row_len;
        ++stats_.truncated;
      } else {
        n = 0;
      }
    }
    // A sample with nothing left to learn (a cut before its first reply) is dropped too.
    if (n > 0 && supervised_in(s, n) == 0) n = 0;
    if (n == 0) ++stats_.dropped;
    length_[i] = n;
    stats_.tokens += n;
    if (n > 0) stats_.supervised += supervised_in(s, n);
  }
  if (stats_.dropped == stats_.samples)
    usage_error(
        "data: every one of the {} fine-tuning samples is longer than data.seq_len + 1 = {} "
        "tokens or has no supervised token; raise data.seq_len",
        stats_.samples, row_len);

  // Rows, epoch by epoch.
  std::vector<int32_t> order(all.size());
  int64_t epoch = 0;
  do {
    std::iota(order.begin(), order.end(), 0);
    if (opt_.shuffle) {
      std::mt19937_64 rng(opt_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
      std::shuffle(order.begin(), order.end(), rng);
    }
    const size_t before = rows_.size();
    std::vector<int32_t> cur;
    int64_t used = 0;
    for (int32_t i : order) {
      const int64_t n = length_[static_cast<size_t>(i)];
      if (n == 0) continue;
      if (!cur.empty() && (!opt_.packing || used + n > row_len)) {
        rows_.push_back(std::move(cur));
        cur.clear();
        used = 0;
      }
      cur.push_back(i);
      used += n;
    }
    if (!cur.empty()) rows_.push_back(std::move(cur));
    if (epoch == 0) stats_.rows_per_epoch = static_cast<int64_t>(rows_.size() - before);
    ++epoch;
  } while (static_cast<int64_t>(rows_.size()) < opt_.num_rows);
  stats_.fill = static_cast<double>(stats_.tokens) /
                static_cast<double>(std::max<int64_t>(1, stats_.rows_per_epoch * row_len));

  // Fingerprint: the settings that shape rows (not num_rows) and every used token and mask bit.
  std::string key = fmt::format("sft-rows-v1 {} {} {} {} {} {}", opt_.seq_len, opt_.packing,
                                opt_.overlong, opt_.seed, opt_.shuffle, opt_.pad_id);
  uint64_t h = xxh64(key);
  for (size_t i = 0; i < all.size(); ++i) {
    const auto n = static_cast<size_t>(length_[i]);
    uint64_t parts[3] = {h, xxh64(all[i].input_ids.data(), n * sizeof(int32_t)),
                         xxh64(all[i].loss_mask.data(), n)};
    h = xxh64(parts, sizeof(parts));
  }
  fingerprint_ = h;
}

void SftRows::sample(int64_t i, std::vector<int32_t>* out) const {
  const int64_t row_len = opt_.seq_len + 1;
  out->clear();
  out->reserve(static_cast<size_t>(row_len));
  for (int32_t s : row(i)) {
    const auto& ids = (*samples_)[static_cast<size_t>(s)].input_ids;
    out->insert(out->end(), ids.begin(), ids.begin() + length_[static_cast<size_t>(s)]);
  }
  out->resize(static_cast<size_t>(row_len), opt_.pad_id);
}

bool SftRows::layout(int64_t i, SampleLayout* out) const {
  const int64_t row_len = opt_.seq_len + 1;
  // Per token of the row (row_len): segment (1.. per sample, 0 padding), position, mask.
  std::vector<int32_t> seg(static_cast<size_t>(row_len), 0), pos(static_cast<size_t>(row_len), 0);
  std::vector<uint8_t> mask(static_cast<size_t>(row_len), 0);
  size_t at = 0;
  int32_t segment = 0;
  for (int32_t s : row(i)) {
    const SftSample& smp = (*samples_)[static_cast<size_t>(s)];
    ++segment;
    for (int64_t t = 0; t < length_[static_cast<size_t>(s)]; ++t, ++at) {
      seg[at] = segment;
      pos[at] = static_cast<int32_t>(t);
      mask[at] = smp.loss_mask[static_cast<size_t>(t)];
    }
  }
  for (int32_t p = 0; at < seg.size(); ++at, ++p) pos[at] = p;  // padding: its own run
  const auto T = static_cast<size_t>(opt_.seq_len);
  out->target_mask.assign(T, 0);
  out->position_ids.assign(pos.begin(), pos.begin() + static_cast<std::ptrdiff_t>(T));
  out->segment_ids.assign(seg.begin(), seg.begin() + static_cast<std::ptrdiff_t>(T));
  for (size_t t = 0; t < T; ++t)
    out->target_mask[t] = seg[t] != 0 && seg[t] == seg[t + 1] && mask[t + 1] ? 1 : 0;
  return true;
}

}  // namespace reef
