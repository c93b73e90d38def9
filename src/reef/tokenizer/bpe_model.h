// BPE: a vocabulary over byte strings, merges by rank, and a per-word cache. Byte-level by
// default (a word starts as one symbol per byte), shared by the Hugging Face tokenizer.json
// loader and the tiktoken rank-file loader (where a token's rank is its merge priority); or
// character-level with byte fallback and unk, for the SentencePiece-converted tokenizer.json
// files of Llama 2, Mistral and Gemma.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace reef {

class BpeModel {
 public:
  // Registers a token by its raw bytes. Bytes already registered keep their first id.
  void add_token(const std::string& bytes, int32_t id);
  // Declares that `left`+`right` merge into the token `left+right` with priority `rank` (lower
  // first). Both parts and the result must already be tokens; returns false when one is not.
  bool add_merge(const std::string& left, const std::string& right, int32_t rank);
  // Emit a word found whole in the vocabulary directly, without merging (HF ignore_merges, and
  // tiktoken's behaviour).
  void set_ignore_merges(bool v) { ignore_merges_ = v; }
  // Use the merged token's own id as its rank (tiktoken: rank == id) for merges not declared.
  void set_rank_by_id(bool v) { rank_by_id_ = v; }
  // A symbol with no token becomes `unk_id` (when >= 0), consecutive ones fused into one when
  // `fuse_unk`, as HF's BPE unk_token/fuse_unk.
  void set_unknown(int32_t unk_id, bool fuse_unk) { unk_id_ = unk_id, fuse_unk_ = fuse_unk; }
  // Character-level: a word starts as one symbol per UTF-8 character (an invalid byte is a
  // character of its own). A character with no token becomes its "<0xXX>" byte tokens when
  // `byte_fallback` and they all exist, else unk, else it is dropped (all as HF `tokenizers`).
  // Call after every add_token.
  void set_char_level(bool byte_fallback);

  // Appends the ids of one pre-tokenized word (raw bytes). Byte-level: throws when a byte has no
  // token and there is no unk.
  void encode_word(std::string_view word, std::vector<int32_t>& out) const;
  // Id of a whole byte string, or -1.
  int32_t find(std::string_view bytes) const;
  const std::unordered_map<std::string, int32_t>& vocab() const { return by_bytes_; }

 private:
  void initial_symbols(std::string_view word, std::vector<int32_t>& ids) const;
  void merge_word(std::string_view word, std::vector<int32_t>& out) const;
  bool lookup_pair(int32_t a, int32_t b, int32_t* rank, int32_t* merged) const;

  std::unordered_map<std::string, int32_t> by_bytes_;
  std::vector<std::string> bytes_of_;  // id -> bytes ("" for ids not registered here)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;  // (a,b) -> (rank, merged)
  int32_t byte_ids_[256];
  bool byte_ids_init_ = false;
  bool ignore_merges_ = false;
  bool rank_by_id_ = false;
  bool char_level_ = false;
  int32_t unk_id_ = -1;
  bool fuse_unk_ = false;
  std::vector<int32_t> fallback_ids_;  // char level with byte fallback: "<0xXX>" ids, -1 if none

  // The word cache is per thread (thread_local, keyed by this model's instance id): threads
  // encoding at once (data prepare's workers) share no cache memory and take no locks.
  static constexpr size_t kCacheLimit = 1 << 17;  // words per thread and model
  static constexpr size_t kCacheMaxWord = 256;    // longer words (whole documents) are not cached
  // A fresh id for every model, copies included (a copy may be changed afterwards).
  struct InstanceId {
    uint64_t value = next();
    InstanceId() = default;
    InstanceId(const InstanceId&) : value(next()) {}
    InstanceId& operator=(const InstanceId&) {
      value = next();
      return *this;
    }
    static uint64_t next();
  };
  InstanceId instance_id_;
};

// Concatenates the bytes of each id (special ids skipped unless keep_special). An id outside
// the vocabulary is an error naming `file`, the tokenizer it came from.
std::string decode_id_bytes(const std::vector<std::string>& bytes_of_id,
                            const std::vector<bool>& special_id, const std::vector<int32_t>& ids,
                            bool keep_special, const std::string& file);

}  // namespace reef
