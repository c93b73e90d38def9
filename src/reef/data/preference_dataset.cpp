// Implementation of data/preference_dataset.h.
#include "reef/data/preference_dataset.h"

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>

#include "reef/base/error.h"
#include "reef/base/hash.h"

namespace reef {
namespace {

size_t cut(size_t n, int64_t max_length) {
  return max_length > 0 ? std::min(n, static_cast<size_t>(max_length)) : n;
}

}  // namespace

PreferenceRows::PreferenceRows(std::shared_ptr<const std::vector<PreferencePair>> pairs,
                               const PreferenceRowOptions& options)
    : pairs_(std::move(pairs)), opt_(options) {
  const auto& all = *pairs_;
  const int64_t row_len = opt_.inputs_only ? opt_.seq_len : opt_.seq_len + 1;
  if (opt_.seq_len <= 0) fail("preference rows need seq_len > 0 (internal error)");
  stats_.pairs = static_cast<int64_t>(all.size());
  use_.assign(all.size(), false);
  uint64_t h = xxh64(fmt::format("preference-pairs-v2 {}{}", opt_.max_length,
                                 opt_.share_prompt ? " shared-prompt" : ""));
  std::vector<int32_t> c, r;
  for (size_t k = 0; k < all.size(); ++k) {
    const PreferencePair& p = all[k];
    if (opt_.max_length > 0 && static_cast<int64_t>(p.prompt.size()) >= opt_.max_length) {
      ++stats_.dropped_prompt;
      continue;
    }
    sequences(static_cast<int32_t>(k), &c, &r);
    if (c.size() < p.prompt.size() + p.chosen.size() ||
        r.size() < p.prompt.size() + p.rejected.size())
      ++stats_.truncated;
    const size_t shared = shared_tokens(p);
    if (static_cast<int64_t>(c.size() + r.size() - shared) > row_len) {
      if (opt_.overlong == "error")
        usage_error(
            "{}: the pair's chosen and rejected sequences have {} + {} tokens{}, more than {} = "
            "{}; raise data.seq_len{} or set data.overlong=drop",
            p.source, c.size(), r.size(),
            shared > 0 ? fmt::format(" ({} of the prompt shared)", shared) : "",
            opt_.inputs_only ? "data.seq_len" : "data.seq_len + 1", row_len,
            opt_.max_length > 0 ? ", lower dpo.max_length" : "");
      ++stats_.dropped_overlong;
      continue;
    }
    use_[k] = true;
    uint64_t parts[4] = {h, static_cast<uint64_t>(k), xxh64(c.data(), c.size() * sizeof(int32_t)),
                         xxh64(r.data(), r.size() * sizeof(int32_t))};
    uint64_t completion[2] = {static_cast<uint64_t>(p.prompt.size()), xxh64(parts, sizeof(parts))};
    h = xxh64(completion, sizeof(completion));
    if (opt_.margins) {
      uint64_t m[2] = {h, 0};
      std::memcpy(&m[1], &p.margin, sizeof(double));
      h = xxh64(m, sizeof(m));
    }
  }
  pairs_fingerprint_ = h;
  std::vector<int32_t> order;
  for (size_t k = 0; k < all.size(); ++k)
    if (use_[k]) order.push_back(static_cast<int32_t>(k));
  if (order.empty())
    usage_error(
        "data: none of the {} preference pairs is left ({} with a prompt of dpo.max_length "
        "tokens or more, {} longer than {} tokens); raise dpo.max_length or data.seq_len",
        stats_.pairs, stats_.dropped_prompt, stats_.dropped_overlong, row_len);
  stats_.rows_per_epoch = static_cast<int64_t>(order.size());
  int64_t epoch = 0;
  do {
    std::vector<int32_t> e = order;
    if (opt_.shuffle) {
      std::mt19937_64 rng(opt_.seed * 1000003ULL + static_cast<uint64_t>(epoch));
      std::shuffle(e.begin(), e.end(), rng);
    }
    if (opt_.group_rows > 1) {
      auto length = [&](int32_t k) {
        const PreferencePair& p = all[static_cast<size_t>(k)];
        return 2 * p.prompt.size() + p.chosen.size() + p.rejected.size() - shared_tokens(p);
      };
      const auto G = static_cast<size_t>(opt_.group_rows);
      for (size_t at = 0; at < e.size(); at += G)
        std::stable_sort(e.begin() + static_cast<std::ptrdiff_t>(at),
                         e.begin() + static_cast<std::ptrdiff_t>(std::min(e.size(), at + G)),
                         [&](int32_t a, int32_t b) { return length(a) > length(b); });
    }
    rows_.insert(rows_.end(), e.begin(), e.end());
    ++epoch;
  } while (static_cast<int64_t>(rows_.size()) < opt_.num_rows);
  const std::string key =
      fmt::format("preference-rows-v2 {} {} {} {}{} {}", opt_.seq_len, opt_.seed, opt_.shuffle,
                  opt_.pad_id, opt_.inputs_only ? " inputs-only" : "", opt_.group_rows);
  uint64_t parts[2] = {xxh64(key), pairs_fingerprint_};
  fingerprint_ = xxh64(parts, sizeof(parts));
}

void PreferenceRows::sequences(int32_t k, std::vector<int32_t>* chosen,
                               std::vector<int32_t>* rejected) const {
  const PreferencePair& p = (*pairs_)[static_cast<size_t>(k)];
  for (auto [out, answer] : {std::pair{chosen, &p.chosen}, std::pair{rejected, &p.rejected}}) {
    out->assign(p.prompt.begin(), p.prompt.end());
    out->insert(out->end(), answer->begin(), answer->end());
    out->resize(cut(out->size(), opt_.max_length));
  }
}

size_t PreferenceRows::shared_tokens(const PreferencePair& p) const {
  return opt_.share_prompt && !p.prompt.empty() ? p.prompt.size() - 1 : 0;
}

void PreferenceRows::sample(int64_t i, std::vector<int32_t>* out) const {
  const int32_t k = pair_of(i);
  const size_t shared = shared_tokens((*pairs_)[static_cast<size_t>(k)]);
  std::vector<int32_t> c, r;
  sequences(k, &c, &r);
  out->assign(c.begin(), c.end());
  out->insert(out->end(), r.begin() + static_cast<std::ptrdiff_t>(shared), r.end());
  out->resize(static_cast<size_t>(opt_.seq_len + 1), opt_.pad_id);
}

bool PreferenceRows::layout(int64_t i, SampleLayout* out) const {
  const int32_t k = pair_of(i);
  const PreferencePair& p = (*pairs_)[static_cast<size_t>(k)];
  std::vector<int32_t> c, r;
  sequences(k, &c, &r);
  const size_t row_len = static_cast<size_t>(opt_.seq_len + 1);
  // Per token of the row: segment (kSharedPrompt, 1 chosen, 2 rejected, 0 padding), position,
  // completion.
  std::vector<int32_t> seg(row_len, 0), pos(row_len, 0);
  std::vector<uint8_t> completion(row_len, 0);
  const size_t shared = shared_tokens(p);
  size_t at = 0;
  for (size_t t = 0; t < shared; ++t, ++at) {
    seg[at] = kSharedPrompt;
    pos[at] = static_cast<int32_t>(t);
  }
  for (auto [segment, n] : {std::pair{1, c.size()}, std::pair{2, r.size()}}) {
    for (size_t t = shared; t < n; ++t, ++at) {
      seg[at] = segment;
      pos[at] = static_cast<int32_t>(t);
      completion[at] = t >= p.prompt.size() ? 1 : 0;
    }
  }
  for (int32_t q = 0; at < row_len; ++at, ++q) pos[at] = q;  // padding: its own run
  const auto T = static_cast<size_t>(opt_.seq_len);
  out->target_mask.assign(T, 0);
  out->position_ids.assign(pos.begin(), pos.begin() + static_cast<std::ptrdiff_t>(T));
  out->segment_ids.assign(seg.begin(), seg.begin() + static_cast<std::ptrdiff_t>(T));
  for (size_t t = 0; t < T; ++t)
    out->target_mask[t] = seg[t] != 0 && seg[t] == seg[t + 1] && completion[t + 1] ? 1 : 0;
  return true;
}

bool PreferenceRows::values(int64_t i, std::vector<float>* out) const {
  const auto k = static_cast<size_t>(pair_of(i));
  if (opt_.margins) {
    out->assign({static_cast<float>((*pairs_)[k].margin)});
    return true;
  }
  if (ref_chosen_.empty()) return false;
  out->assign({ref_chosen_[k], ref_rejected_[k]});
  return true;
}

void PreferenceRows::set_reference(std::vector<float> chosen, std::vector<float> rejected) {
  if (chosen.size() != pairs_->size() || rejected.size() != pairs_->size())
    fail("reference log-probs for {} / {} pairs, the data has {} (internal error)", chosen.size(),
         rejected.size(), pairs_->size());
  ref_chosen_ = std::move(chosen);
  ref_rejected_ = std::move(rejected);
}

}  // namespace reef
