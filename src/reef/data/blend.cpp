// Implementation of data/blend.h.
#include "reef/data/blend.h"

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/hash.h"

namespace reef {
namespace {

bool parse_weight(const std::string& s, double* w) {
  size_t used = 0;
  try {
    *w = std::stod(s, &used);
  } catch (const std::exception&) {
    return false;
  }
  return used == s.size() && !s.empty();
}

}  // namespace

std::vector<BlendEntry> parse_blend(const std::vector<std::string>& spec) {
  if (spec.empty()) usage_error("data blend is empty: give PREFIX or [w1, PREFIX1, w2, PREFIX2]");
  std::vector<BlendEntry> out;
  double w = 0;
  if (!parse_weight(spec[0], &w)) {
    for (const auto& s : spec) {
      if (parse_weight(s, &w))
        usage_error("data blend: '{}' looks like a weight in a list of prefixes without weights",
                    s);
      out.push_back({-1.0, s});
    }
    return out;
  }
  if (spec.size() % 2 != 0)
    usage_error("data blend: {} elements; a weighted blend alternates weight, prefix", spec.size());
  double sum = 0;
  for (size_t i = 0; i < spec.size(); i += 2) {
    if (!parse_weight(spec[i], &w) || !(w >= 0) || !std::isfinite(w))
      usage_error("data blend: element {} ('{}') should be a non-negative weight", i, spec[i]);
    double unused = 0;
    if (parse_weight(spec[i + 1], &unused))
      usage_error("data blend: element {} ('{}') should be a dataset prefix", i + 1, spec[i + 1]);
    out.push_back({w, spec[i + 1]});
    sum += w;
  }
  if (!(sum > 0)) usage_error("data blend: weights sum to {}, must be positive", sum);
  return out;
}

void build_blending_indices(const std::vector<double>& weights, int64_t size,
                            std::vector<int32_t>* dataset_index,
                            std::vector<int64_t>* dataset_sample_index,
                            const std::vector<int64_t>* limits) {
  const size_t n = weights.size();
  std::vector<int64_t> count(n, 0);
  dataset_index->assign(static_cast<size_t>(size), 0);
  dataset_sample_index->assign(static_cast<size_t>(size), 0);
  for (int64_t i = 0; i < size; ++i) {
    const double x = std::max(static_cast<double>(i), 1.0);
    size_t best = n;
    double best_err = 0;
    for (size_t d = 0; d < n; ++d) {
      if (limits && count[d] >= (*limits)[d]) continue;
      const double err = weights[d] * x - static_cast<double>(count[d]);
      if (best == n || err > best_err) {
        best_err = err;
        best = d;
      }
    }
    if (best == n) fail("blend: all datasets are spent after {} of {} samples", i, size);
    (*dataset_index)[i] = static_cast<int32_t>(best);
    (*dataset_sample_index)[i] = count[best]++;
  }
}

BlendedGptDataset::BlendedGptDataset(std::vector<std::unique_ptr<GptSampleSource>> children,
                                     std::vector<double> weights, int64_t size, bool exhaustive)
    : children_(std::move(children)), weights_(std::move(weights)) {
  if (children_.empty() || children_.size() != weights_.size())
    fail("blend: {} datasets and {} weights", children_.size(), weights_.size());
  double sum = 0;
  for (double w : weights_) sum += w;
  if (!(sum > 0)) usage_error("blend: weights sum to {}, must be positive", sum);
  for (double& w : weights_) w /= sum;
  for (const auto& c : children_)
    if (c->seq_len() != children_.front()->seq_len())
      fail("blend: datasets with seq_len {} and {}", c->seq_len(), children_.front()->seq_len());
  std::vector<int64_t> limits;
  for (const auto& c : children_) limits.push_back(c->num_samples());
  build_blending_indices(weights_, size, &dataset_index_, &dataset_sample_index_,
                         exhaustive ? &limits : nullptr);
  std::vector<int64_t> used(children_.size(), 0);
  for (int64_t i = 0; i < size; ++i)
    used[dataset_index_[i]] = std::max(used[dataset_index_[i]], dataset_sample_index_[i] + 1);
  for (size_t k = 0; k < children_.size(); ++k)
    if (used[k] > children_[k]->num_samples())
      fail("blend: dataset {} is asked for {} samples but has {}", k, used[k],
           children_[k]->num_samples());
}

void BlendedGptDataset::sample(int64_t i, std::vector<int32_t>* out) const {
  if (i < 0 || i >= num_samples())
    fail("blended dataset: sample {} out of range [0, {})", i, num_samples());
  children_[dataset_index_[i]]->sample(dataset_sample_index_[i], out);
}

uint64_t BlendedGptDataset::fingerprint() const {
  std::string k = "reef-blend-v1";
  for (size_t d = 0; d < children_.size(); ++d) {
    const uint64_t f = children_[d]->fingerprint();
    k.append(reinterpret_cast<const char*>(&f), 8);
    k.append(reinterpret_cast<const char*>(&weights_[d]), 8);
  }
  return xxh64(k);
}

std::unique_ptr<GptSampleSource> open_gpt_samples(const std::vector<std::string>& blend,
                                                  const GptIndexOptions& opts) {
  const auto entries = parse_blend(blend);
  const bool weighted = entries.front().weight >= 0;
  if (entries.size() == 1 && !weighted)
    return std::make_unique<GptDataset>(entries.front().prefix, opts);
  if (weighted && opts.num_samples <= 0)
    usage_error("data blend with weights needs a number of samples (num_samples > 0)");
  double sum = 0;
  for (const auto& e : entries) sum += std::max(e.weight, 0.0);
  std::vector<std::unique_ptr<GptSampleSource>> children;
  std::vector<double> weights;
  int64_t size = opts.num_samples;
  for (const auto& e : entries) {
    GptIndexOptions o = opts;
    if (weighted) {
      // Megatron builds each dataset with a 0.5% surplus so the greedy blend never runs short.
      o.num_samples = static_cast<int64_t>(
          std::ceil(static_cast<double>(opts.num_samples) * (e.weight / sum) * 1.005));
      if (o.num_samples == 0) o.num_samples = 1;
    } else {
      o.num_samples = 0;
    }
    children.push_back(std::make_unique<GptDataset>(e.prefix, o));
    weights.push_back(weighted ? e.weight : static_cast<double>(children.back()->num_samples()));
  }
  if (!weighted) {
    int64_t total = 0;
    for (const auto& c : children) total += c->num_samples();
    size = opts.num_samples > 0 ? std::min(opts.num_samples, total) : total;
  }
  return std::make_unique<BlendedGptDataset>(std::move(children), std::move(weights), size,
                                             !weighted);
}

}  // namespace reef
