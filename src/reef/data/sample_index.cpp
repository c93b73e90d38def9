// Implementation of data/sample_index.h. The .sidx cache (little-endian, 8-byte aligned so the
// mapped arrays can be used in place):
//   "REEFSIDX" | u64 format version | u64 key | u64 order length | u64 samples built |
//   u64 epochs | u64 samples served | 8 bytes zero | i64 order[order length] |
//   i64 starts[2 * samples built] | i64 shuffle[samples built]
#include "reef/data/sample_index.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/hash.h"

namespace reef {
namespace {

constexpr char kSidxMagic[8] = {'R', 'E', 'E', 'F', 'S', 'I', 'D', 'X'};
constexpr uint64_t kSidxVersion = 2;
constexpr size_t kSidxHeader = 64;

std::string trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t"), b = s.find_last_not_of(" \t");
  return a == std::string::npos ? std::string() : s.substr(a, b - a + 1);
}

uint64_t mix(uint64_t a, uint64_t b) {
  SplitMix64 g(a ^ (b * 0x9e3779b97f4a7c15ULL));
  return g.next();
}

std::string base_name(const std::string& p) {
  size_t s = p.rfind('/');
  return s == std::string::npos ? p : p.substr(s + 1);
}

}  // namespace

const char* split_name(Split s) {
  switch (s) {
    case Split::kTrain:
      return "train";
    case Split::kValid:
      return "valid";
    case Split::kTest:
      return "test";
  }
  return "?";
}

std::array<double, 3> parse_split(const std::string& split) {
  std::array<double, 3> w{0, 0, 0};
  std::stringstream ss(split);
  std::string part;
  int n = 0;
  double sum = 0;
  while (std::getline(ss, part, ',')) {
    part = trim(part);
    if (n >= 3) usage_error("split '{}': at most three parts (train,valid,test)", split);
    size_t used = 0;
    double v = -1;
    try {
      v = std::stod(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || !(v >= 0) || !std::isfinite(v))
      usage_error("split '{}': '{}' is not a non-negative number", split, part);
    w[n++] = v;
    sum += v;
  }
  if (n == 0 || sum <= 0) usage_error("split '{}': weights must sum to more than 0", split);
  for (double& v : w) v /= sum;
  return w;
}

std::array<int64_t, 4> split_boundaries(const std::array<double, 3>& weights, int64_t n_docs) {
  // megatron-core: cumulative fractions ("book-ends"), each cut rounded on its own, so the
  // cuts never overlap and the last one is exactly n. nearbyint rounds half to even, as
  // Python's round() does.
  std::array<int64_t, 4> b{0, 0, 0, n_docs};
  double c = 0;
  for (int i = 0; i < 2; ++i) {
    c += weights[i];
    b[i + 1] = std::min<int64_t>(
        n_docs, static_cast<int64_t>(std::nearbyint(c * static_cast<double>(n_docs))));
  }
  return b;
}

uint64_t SplitMix64::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

uint64_t SplitMix64::below(uint64_t n) {
  // Rejection keeps it unbiased: drop the top partial block of the 2^64 range.
  const uint64_t threshold = (0 - n) % n;
  for (;;) {
    uint64_t r = next();
    if (r >= threshold) return r % n;
  }
}

void seeded_shuffle(int64_t* v, int64_t n, uint64_t seed) {
  SplitMix64 g(seed);
  for (int64_t i = n - 1; i > 0; --i) {
    int64_t j = static_cast<int64_t>(g.below(static_cast<uint64_t>(i + 1)));
    std::swap(v[i], v[j]);
  }
}

// ---- GptDataset ----

GptDataset::GptDataset(const std::string& prefix, GptIndexOptions opts)
    : GptDataset(std::make_shared<const IndexedDataset>(prefix), std::move(opts)) {}

GptDataset::GptDataset(std::shared_ptr<const IndexedDataset> data, GptIndexOptions opts)
    : data_(std::move(data)), opts_(std::move(opts)) {
  if (opts_.seq_len <= 0) usage_error("GPT dataset {}: seq_len must be positive", data_->prefix());
  if (opts_.num_samples < 0)
    usage_error("GPT dataset {}: num_samples must be >= 0", data_->prefix());
  const auto b = split_boundaries(parse_split(opts_.split), data_->num_documents());
  const int k = static_cast<int>(opts_.which);
  doc_begin_ = b[k];
  doc_end_ = b[k + 1];
  const std::string dir = opts_.cache_dir.empty() ? std::string() : opts_.cache_dir;
  const std::string stem =
      dir.empty() ? data_->prefix() : join_path(dir, base_name(data_->prefix()));
  if (!dir.empty()) make_dirs(dir);
  key_ = compute_cache_key();
  cache_path_ = stem + "." + hex64(key_) + ".sidx";
  if (!load_cache()) {
    build_and_save();
    if (!load_cache()) fail("{}: sample index written but cannot be read back", cache_path_);
    from_cache_ = false;
  }
}

uint64_t GptDataset::compute_cache_key() {
  // The whole .idx (lengths, document index, dtype) plus the .bin size pin down the data; the
  // rest are the options that shape the index. Names are not part of it, so a copied dataset
  // reuses its cache.
  std::string k = "reef-gpt-sample-index-v1";
  auto add = [&k](uint64_t v) { k.append(reinterpret_cast<const char*>(&v), 8); };
  add(xxh64(data_->idx_file().data(), data_->idx_file().size()));
  add(data_->bin_file().size());
  add(static_cast<uint64_t>(opts_.seq_len));
  add(opts_.seed);
  add(static_cast<uint64_t>(doc_begin_));
  add(static_cast<uint64_t>(doc_end_));
  add(static_cast<uint64_t>(opts_.which));
  // Everything so far fixes sample i for every i (blocks shuffle independently); the count
  // only decides how many blocks the cache holds.
  fingerprint_ = xxh64(k);
  add(static_cast<uint64_t>(opts_.num_samples));
  return xxh64(k);
}

bool GptDataset::load_cache() {
  if (!path_exists(cache_path_)) return false;
  auto m = MappedFile::open(cache_path_);
  const uint8_t* p = m->data();
  if (m->size() < kSidxHeader || std::memcmp(p, kSidxMagic, 8) != 0) return false;
  uint64_t h[6];
  std::memcpy(h, p + 8, sizeof(h));
  if (h[0] != kSidxVersion || h[1] != key_) return false;
  const uint64_t n_order = h[2], n_built = h[3], n_served = h[5];
  if (n_order > m->size() || n_built > m->size() || n_served > n_built ||
      m->size() != kSidxHeader + 8 * (n_order + 3 * n_built))
    return false;  // truncated or foreign: rebuild
  map_ = m;
  n_order_ = static_cast<int64_t>(n_order);
  n_samples_ = static_cast<int64_t>(n_served);
  const int64_t built = static_cast<int64_t>(n_built);
  n_epochs_ = static_cast<int64_t>(h[4]);
  order_ = reinterpret_cast<const int64_t*>(p + kSidxHeader);
  starts_ = order_ + n_order_;
  shuffle_ = starts_ + 2 * built;
  from_cache_ = true;
  return true;
}

void GptDataset::build_and_save() {
  const std::string what =
      fmt::format("GPT dataset {} ({} split {}, documents [{}, {}))", data_->prefix(), opts_.split,
                  split_name(opts_.which), doc_begin_, doc_end_);
  const int64_t n_docs = doc_end_ - doc_begin_;
  std::vector<int64_t> lengths(static_cast<size_t>(n_docs));
  int64_t tokens_per_epoch = 0;
  for (int64_t d = 0; d < n_docs; ++d) {
    lengths[d] = data_->document_length(doc_begin_ + d);
    tokens_per_epoch += lengths[d];
  }
  const int64_t L = opts_.seq_len;
  if (tokens_per_epoch < L + 1)
    usage_error("{}: {} tokens, fewer than one sample of seq_len+1 = {}", what, tokens_per_epoch,
                L + 1);
  // Sample j covers stream tokens [j*L, j*L + L]: consecutive samples share one token, so N
  // samples need N*L + 1 tokens. Samples are shuffled in blocks of one epoch's worth, each
  // block with its own seed, and always whole blocks are built: sample i is then the same for
  // every num_samples > i, so raising train.max_steps on resume keeps the order seen so far.
  const int64_t block = (tokens_per_epoch - 1) / L;
  const int64_t n_served = opts_.num_samples == 0 ? block : opts_.num_samples;
  const int64_t n_blocks = (n_served + block - 1) / block;
  const int64_t n_samples = n_blocks * block;
  const int64_t n_epochs = (n_samples * L + 1 + tokens_per_epoch - 1) / tokens_per_epoch;

  std::vector<int64_t> order(static_cast<size_t>(n_docs * n_epochs));
  for (int64_t e = 0; e < n_epochs; ++e) {
    int64_t* o = order.data() + e * n_docs;
    for (int64_t d = 0; d < n_docs; ++d) o[d] = doc_begin_ + d;
    seeded_shuffle(o, n_docs, mix(opts_.seed, 0x1000 + static_cast<uint64_t>(e)));
  }

  std::vector<int64_t> starts(static_cast<size_t>(2 * n_samples));
  int64_t pos = 0, off = 0;
  const int64_t n_order = static_cast<int64_t>(order.size());
  for (int64_t s = 0; s < n_samples; ++s) {
    starts[2 * s] = pos;
    starts[2 * s + 1] = off;
    int64_t rem = L;
    while (rem > 0) {
      if (pos >= n_order) fail("{}: sample index ran past the data (internal error)", what);
      const int64_t avail = lengths[order[pos] - doc_begin_] - off;
      if (avail > rem) {
        off += rem;
        rem = 0;
      } else {
        rem -= avail;
        ++pos;
        off = 0;
      }
    }
  }

  std::vector<int64_t> shuffle(static_cast<size_t>(n_samples));
  for (int64_t s = 0; s < n_samples; ++s) shuffle[s] = s;
  for (int64_t b = 0; b < n_blocks; ++b)
    seeded_shuffle(shuffle.data() + b * block, block,
                   mix(opts_.seed, 0x2000 + static_cast<uint64_t>(b)));

  AtomicFileWriter w(cache_path_);
  uint64_t h[7] = {kSidxVersion,
                   key_,
                   static_cast<uint64_t>(n_order),
                   static_cast<uint64_t>(n_samples),
                   static_cast<uint64_t>(n_epochs),
                   static_cast<uint64_t>(n_served),
                   0};
  w.write(kSidxMagic, 8);
  w.write(h, sizeof(h));
  w.write(order.data(), order.size() * 8);
  w.write(starts.data(), starts.size() * 8);
  w.write(shuffle.data(), shuffle.size() * 8);
  w.commit();
}

void GptDataset::check_index(int64_t i) const {
  if (i < 0 || i >= n_samples_)
    fail("GPT dataset {}: sample {} out of range [0, {})", data_->prefix(), i, n_samples_);
}

void GptDataset::sample(int64_t i, std::vector<int32_t>* out) const {
  check_index(i);
  const int64_t j = shuffle_[i];
  int64_t pos = starts_[2 * j], off = starts_[2 * j + 1];
  int64_t need = opts_.seq_len + 1;
  out->clear();
  out->reserve(static_cast<size_t>(need));
  while (need > 0) {
    if (pos >= n_order_)
      fail("GPT dataset {}: sample {} runs past the end of the index {}", data_->prefix(), i,
           cache_path_);
    const TokenView doc = data_->document(order_[pos]);
    const int64_t take = std::min(need, doc.size - off);
    if (take > 0) doc.append_to(out, off, take);
    need -= std::max<int64_t>(take, 0);
    ++pos;
    off = 0;
  }
}

std::vector<int64_t> GptDataset::document_order() const {
  return std::vector<int64_t>(order_, order_ + n_order_);
}

int64_t GptDataset::unshuffled_index(int64_t i) const {
  check_index(i);
  return shuffle_[i];
}

}  // namespace reef
