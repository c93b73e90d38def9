// BPE merging (see bpe_model.h). Merging follows HF `tokenizers`: repeatedly apply the
// lowest-rank adjacent pair, leftmost first on ties, with a heap so long words stay fast.
#include "reef/tokenizer/bpe_model.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <queue>

#include "reef/base/error.h"
#include "reef/tokenizer/normalizer.h"

namespace reef {

uint64_t BpeModel::InstanceId::next() {
  static std::atomic<uint64_t> counter{1};
  return counter.fetch_add(1);
}

void BpeModel::add_token(const std::string& bytes, int32_t id) {
  if (!byte_ids_init_) {
    std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
    byte_ids_init_ = true;
  }
  if (by_bytes_.emplace(bytes, id).second && bytes.size() == 1)
    byte_ids_[static_cast<unsigned char>(bytes[0])] = id;
  if (id >= 0) {
    if (bytes_of_.size() <= static_cast<size_t>(id)) bytes_of_.resize(id + 1);
    if (bytes_of_[id].empty()) bytes_of_[id] = bytes;
  }
}

bool BpeModel::add_merge(const std::string& left, const std::string& right, int32_t rank) {
  int32_t a = find(left), b = find(right), m = find(left + right);
  if (a < 0 || b < 0 || m < 0) return false;
  uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  merges_.emplace(key, std::make_pair(rank, m));  // the first (lowest-rank) declaration wins
  return true;
}

void BpeModel::set_char_level(bool byte_fallback) {
  char_level_ = true;
  fallback_ids_.clear();
  if (!byte_fallback) return;
  fallback_ids_.assign(256, -1);
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    fallback_ids_[b] = find(name);
  }
}

int32_t BpeModel::find(std::string_view bytes) const {
  auto it = by_bytes_.find(std::string(bytes));
  return it == by_bytes_.end() ? -1 : it->second;
}

bool BpeModel::lookup_pair(int32_t a, int32_t b, int32_t* rank, int32_t* merged) const {
  uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  auto it = merges_.find(key);
  if (it != merges_.end()) {
    *rank = it->second.first;
    *merged = it->second.second;
    return true;
  }
  if (!rank_by_id_) return false;
  const std::string& sa = bytes_of_[a];
  const std::string& sb = bytes_of_[b];
  auto jt = by_bytes_.find(sa + sb);
  if (jt == by_bytes_.end()) return false;
  *rank = *merged = jt->second;
  return true;
}

void BpeModel::encode_word(std::string_view word, std::vector<int32_t>& out) const {
  if (word.empty()) return;
  if (ignore_merges_ || word.size() == 1) {
    int32_t id = find(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  if (word.size() > kCacheMaxWord) {
    merge_word(word, out);
    return;
  }
  // This thread's cache for this model; a thread keeps the caches of its last few models.
  struct ThreadCache {
    uint64_t owner;
    std::unordered_map<std::string, std::vector<int32_t>> map;
  };
  thread_local std::vector<ThreadCache> caches;
  ThreadCache* cache = nullptr;
  for (auto& c : caches)
    if (c.owner == instance_id_.value) cache = &c;
  if (!cache) {
    if (caches.size() >= 4) caches.erase(caches.begin());
    caches.push_back({instance_id_.value, {}});
    cache = &caches.back();
  }
  thread_local std::string key;
  key.assign(word.data(), word.size());
  auto it = cache->map.find(key);
  if (it != cache->map.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  if (cache->map.size() >= kCacheLimit) cache->map.clear();
  cache->map.emplace(key, std::move(ids));
}

void BpeModel::initial_symbols(std::string_view word, std::vector<int32_t>& ids) const {
  // A pending unk (HF: flushed before the next known symbol, not before byte-fallback tokens).
  int32_t pending_unk = -1;
  auto unknown = [&](std::string_view sym) {
    if (unk_id_ < 0) {
      if (char_level_) return;  // HF drops it
      fail(
          "BPE vocabulary has no token for byte 0x{:02x} and no unk_token: not a byte-level "
          "vocabulary",
          static_cast<unsigned>(static_cast<unsigned char>(sym[0])));
    }
    if (pending_unk >= 0 && !fuse_unk_) ids.push_back(pending_unk);
    pending_unk = unk_id_;
  };
  auto known = [&](int32_t id) {
    if (pending_unk >= 0) ids.push_back(pending_unk), pending_unk = -1;
    ids.push_back(id);
  };
  for (size_t i = 0; i < word.size();) {
    size_t n = char_level_ ? std::max<size_t>(1, utf8_char_len(word, i)) : 1;
    int32_t id = n == 1 ? (byte_ids_init_ ? byte_ids_[static_cast<unsigned char>(word[i])] : -1)
                        : find(word.substr(i, n));
    if (id >= 0) {
      known(id);
    } else {
      bool fallback = !fallback_ids_.empty();
      for (size_t k = 0; fallback && k < n; ++k)
        fallback = fallback_ids_[static_cast<unsigned char>(word[i + k])] >= 0;
      if (fallback) {
        for (size_t k = 0; k < n; ++k)
          ids.push_back(fallback_ids_[static_cast<unsigned char>(word[i + k])]);
      } else {
        unknown(word.substr(i, n));
      }
    }
    i += n;
  }
  if (pending_unk >= 0) ids.push_back(pending_unk);
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  thread_local std::vector<int32_t> ids;
  ids.clear();
  initial_symbols(word, ids);
  if (ids.empty()) return;
  std::vector<Sym> syms(ids.size());
  for (size_t i = 0; i < ids.size(); ++i)
    syms[i] = {ids[i], static_cast<int32_t>(i) - 1,
               i + 1 < ids.size() ? static_cast<int32_t>(i) + 1 : -1};
  struct Cand {
    int32_t rank, pos, left_id, right_id, merged;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int32_t pos) {
    if (pos < 0 || syms[pos].next < 0) return;
    int32_t r, m;
    if (lookup_pair(syms[pos].id, syms[syms[pos].next].id, &r, &m))
      heap.push({r, pos, syms[pos].id, syms[syms[pos].next].id, m});
  };
  for (size_t i = 0; i + 1 < syms.size(); ++i) push(static_cast<int32_t>(i));
  while (!heap.empty()) {
    Cand c = heap.top();
    heap.pop();
    Sym& left = syms[c.pos];
    // Stale entries: the left symbol was merged away or changed, or its neighbour changed.
    if (left.id != c.left_id || left.next < 0 || syms[left.next].id != c.right_id) continue;
    int32_t right = left.next;
    left.id = c.merged;
    left.next = syms[right].next;
    if (left.next >= 0) syms[left.next].prev = c.pos;
    syms[right].id = -1;  // dead
    push(left.prev);
    push(c.pos);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::string decode_id_bytes(const std::vector<std::string>& bytes_of_id,
                            const std::vector<bool>& special_id, const std::vector<int32_t>& ids,
                            bool keep_special, const std::string& file) {
  std::string out;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= bytes_of_id.size())
      fail("{}: cannot decode id {} (vocabulary size {})", file, id, bytes_of_id.size());
    if (!keep_special && special_id[static_cast<size_t>(id)]) continue;
    out += bytes_of_id[static_cast<size_t>(id)];
  }
  return out;
}

}  // namespace reef
