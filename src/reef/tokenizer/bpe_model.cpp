// Byte-level BPE merging (see bpe_model.h). Merging follows HF `tokenizers`: repeatedly apply
// the lowest-rank adjacent pair, leftmost first on ties, with a heap so long words stay fast.
#include "reef/tokenizer/bpe_model.h"

#include <algorithm>
#include <queue>

#include "reef/base/error.h"

namespace reef {

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
  std::string key(word);
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(key);
    if (it != cache_.end()) {
      out.insert(out.end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> ids;
  merge_word(word, ids);
  out.insert(out.end(), ids.begin(), ids.end());
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_.size() >= kCacheLimit) cache_.clear();
  cache_.emplace(std::move(key), std::move(ids));
}

void BpeModel::merge_word(std::string_view word, std::vector<int32_t>& out) const {
  struct Sym {
    int32_t id;
    int32_t prev, next;  // -1 at the ends
  };
  std::vector<Sym> syms(word.size());
  for (size_t i = 0; i < word.size(); ++i) {
    int32_t id = byte_ids_init_ ? byte_ids_[static_cast<unsigned char>(word[i])] : -1;
    if (id < 0)
      fail("BPE vocabulary has no token for byte 0x{:02x}: not a byte-level vocabulary",
           static_cast<unsigned>(static_cast<unsigned char>(word[i])));
    syms[i] = {id, static_cast<int32_t>(i) - 1,
               i + 1 < word.size() ? static_cast<int32_t>(i) + 1 : -1};
  }
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
  for (size_t i = 0; i + 1 < word.size(); ++i) push(static_cast<int32_t>(i));
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
