// Byte-level BPE training (see bpe_trainer.h). Words are counted per thread and merged; the merge
// loop then follows HF `tokenizers`' BpeTrainer step for step: every heap entry carries the words
// that held its pair when it was pushed, a popped entry whose count is stale is re-pushed with the
// current count, a merge rewrites only the entry's words, and the pair counts change by the
// neighbours each rewrite removes or creates. Ties go to the smaller (left id, right id).
#include "reef/tokenizer/bpe_trainer.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <limits>
#include <nlohmann/json.hpp>
#include <thread>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/threads.h"
#include "reef/tokenizer/pre_tokenizer.h"
#include "reef/tokenizer/regex.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {
namespace {

// Llama 3's tokenizer.json pattern (HF's rendering of tiktoken's cl100k) and Qwen2's.
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

constexpr size_t kFlushBytes = size_t{32} << 20;
constexpr size_t kParallelMergeWords = 4096;

using WordMap = std::unordered_map<std::string_view, int64_t>;

// Runs fn(t) for t in [0, n) on n threads (inline when n == 1); rethrows the first exception.
template <typename Fn>
void run_parallel(int n, Fn fn) {
  if (n <= 1) {
    fn(0);
    return;
  }
  std::vector<std::exception_ptr> errors(n);
  std::vector<std::thread> threads;
  for (int t = 0; t < n; ++t)
    threads.emplace_back([&, t] {
      try {
        fn(t);
      } catch (...) {
        errors[t] = std::current_exception();
      }
    });
  for (auto& th : threads) th.join();
  for (auto& e : errors)
    if (e) std::rethrow_exception(e);
}

// Splits `text` as the tokenizer.json pre-tokenizer will (regex matches and the gaps between
// them, each a word; invalid UTF-8 runs are words of their own) and counts the words.
void count_words(const Regex& re, std::string_view text, std::vector<std::pair<size_t, size_t>>& m,
                 WordMap& out) {
  size_t i = 0;
  while (i < text.size()) {
    size_t n = valid_utf8_prefix(text.substr(i));
    if (n == 0) {
      n = invalid_utf8_run(text.substr(i));
      ++out[text.substr(i, n)];
      i += n;
      continue;
    }
    std::string_view seg = text.substr(i, n);
    m.clear();
    re.find_all(seg, m);
    size_t prev = 0;
    for (auto [b, e] : m) {
      if (b != prev) ++out[seg.substr(prev, b - prev)];
      ++out[seg.substr(b, e - b)];
      prev = e;
    }
    if (prev != seg.size()) ++out[seg.substr(prev)];
    i += n;
  }
}

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}
int32_t pair_left(uint64_t k) { return static_cast<int32_t>(k >> 32); }
int32_t pair_right(uint64_t k) { return static_cast<int32_t>(k & 0xffffffffu); }

// A candidate merge: the pair's count when pushed and the words that then held it.
struct Entry {
  int64_t count;
  uint64_t pair;
  uint64_t seq;  // push order: a deterministic tie-break between entries of one pair
  std::vector<int32_t> pos;
};
struct EntryLess {  // max-heap: higher count, then smaller pair, then earlier push
  bool operator()(const Entry& x, const Entry& y) const {
    if (x.count != y.count) return x.count < y.count;
    if (x.pair != y.pair) return x.pair > y.pair;
    return x.seq > y.seq;
  }
};

struct Change {
  uint64_t pair;
  int32_t word;
  int32_t delta;
};

// The words as symbol ids in one flat array; merge() rewrites a word in place and reports the
// pair-count changes exactly as HF's Word::merge does.
struct Words {
  std::vector<int32_t> syms;
  std::vector<size_t> off;
  std::vector<int32_t> len;
  std::vector<int64_t> count;

  void merge(int32_t w, int32_t a, int32_t b, int32_t r, const std::vector<int64_t>& tok_len,
             int64_t max_len, std::vector<Change>& out) {
    int32_t* s = syms.data() + off[w];
    const int32_t n = len[w];
    int32_t j = 0;
    for (int32_t i = 0; i < n;) {
      if (s[i] == a && i + 1 < n && s[i + 1] == b) {
        if (j > 0) {
          out.push_back({pair_key(s[j - 1], a), w, -1});
          if (tok_len[s[j - 1]] + tok_len[r] < max_len)
            out.push_back({pair_key(s[j - 1], r), w, 1});
        }
        if (i + 2 < n) {
          out.push_back({pair_key(b, s[i + 2]), w, -1});
          if (tok_len[s[i + 2]] + tok_len[r] < max_len)
            out.push_back({pair_key(r, s[i + 2]), w, 1});
        }
        s[j++] = r;
        i += 2;
      } else {
        s[j++] = s[i++];
      }
    }
    len[w] = j;
  }
};

// Number of UTF-8 characters in s.
int64_t char_count(const std::string& s) {
  int64_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

}  // namespace

std::string bpe_pattern_regex(const std::string& name_or_regex, std::string* name) {
  std::string n = name_or_regex, p;
  if (n == "gpt2") {
    p = kGpt2Pattern;
  } else if (n == "llama3" || n == "cl100k") {
    n = "llama3", p = kLlama3Pattern;
  } else if (n == "qwen2") {
    p = kQwen2Pattern;
  } else {
    n = "regex", p = name_or_regex;
  }
  if (name) *name = n;
  return p;
}

BpeTrainer::BpeTrainer(BpeTrainerOptions opts) : opts_(std::move(opts)) {
  if (opts_.pattern.empty())
    usage_error("tokenizer pattern is empty (expected gpt2, llama3, qwen2 or a regex)");
  pattern_ = bpe_pattern_regex(opts_.pattern, &pattern_name_);
  try {
    regex_ = std::make_unique<Regex>(pattern_, "tokenizer pattern");
  } catch (const Error& e) {
    usage_error("{}", e.what());
  }
  if (opts_.min_frequency < 0) usage_error("min_frequency={}: must be >= 0", opts_.min_frequency);
  if (opts_.max_token_length < 0)
    usage_error("max_token_length={}: must be >= 0", opts_.max_token_length);
  std::vector<std::string> specials;
  for (const auto& s : opts_.special_tokens) {
    if (s.empty()) usage_error("special tokens: an empty special token is not allowed");
    if (valid_utf8_prefix(s) != s.size()) usage_error("special token '{}' is not valid UTF-8", s);
    if (std::find(specials.begin(), specials.end(), s) == specials.end()) specials.push_back(s);
  }
  opts_.special_tokens = std::move(specials);
  if (opts_.vocab_size < initial_vocab_size())
    usage_error("vocab size {} is smaller than the {} special token(s) plus 256 byte symbols ({})",
                opts_.vocab_size, opts_.special_tokens.size(), initial_vocab_size());
  if (opts_.vocab_size > std::numeric_limits<int32_t>::max() / 2)
    usage_error("vocab size {} is too large", opts_.vocab_size);
}

BpeTrainer::~BpeTrainer() = default;

int BpeTrainer::thread_count() const { return ::reef::thread_count(opts_.threads); }

int64_t BpeTrainer::initial_vocab_size() const {
  std::unordered_map<std::string, int> seen;
  for (const auto& s : opts_.special_tokens) seen.emplace(s, 0);
  for (int b = 0; b < 256; ++b) seen.emplace(byte_to_unicode(static_cast<uint8_t>(b)), 0);
  return static_cast<int64_t>(seen.size());
}

void BpeTrainer::add_text(std::string_view text) {
  if (trained_) fail("BpeTrainer: add_text after train()");
  pending_.append(text);
  pending_ends_.push_back(pending_.size());
  ++n_texts_;
  n_bytes_ += static_cast<int64_t>(text.size());
  if (pending_.size() >= kFlushBytes) flush();
}

void BpeTrainer::add_texts(const std::vector<std::string>& texts) {
  for (const auto& t : texts) add_text(t);
}

int64_t BpeTrainer::unique_words() {
  flush();
  return static_cast<int64_t>(word_counts_.size());
}

void BpeTrainer::flush() {
  if (pending_ends_.empty()) return;
  const int n_threads =
      static_cast<int>(std::min<size_t>(static_cast<size_t>(thread_count()), pending_ends_.size()));
  // Contiguous runs of texts of about equal bytes, one per thread.
  std::vector<size_t> first(n_threads + 1, pending_ends_.size());
  first[0] = 0;
  for (int t = 1; t < n_threads; ++t) {
    size_t target = pending_.size() * t / n_threads;
    first[t] =
        static_cast<size_t>(std::lower_bound(pending_ends_.begin(), pending_ends_.end(), target) -
                            pending_ends_.begin());
    first[t] = std::max(first[t], first[t - 1]);
  }
  std::vector<WordMap> local(n_threads);
  run_parallel(n_threads, [&](int t) {
    std::vector<std::pair<size_t, size_t>> m;
    for (size_t k = first[t]; k < first[t + 1]; ++k) {
      size_t b = k == 0 ? 0 : pending_ends_[k - 1];
      count_words(*regex_, std::string_view(pending_).substr(b, pending_ends_[k] - b), m, local[t]);
    }
  });
  for (auto& l : local)
    for (const auto& [w, c] : l) word_counts_[std::string(w)] += c;
  pending_.clear();
  pending_ends_.clear();
}

BpeVocab BpeTrainer::train(const std::function<void(int64_t, int64_t)>& progress) {
  if (trained_) fail("BpeTrainer: train() called twice");
  flush();
  trained_ = true;
  const int64_t max_len =
      opts_.max_token_length > 0 ? opts_.max_token_length : std::numeric_limits<int64_t>::max() / 4;

  // 1-2. Specials, then the byte alphabet sorted by code point (HF's compute_alphabet).
  std::unordered_map<std::string, int32_t> id_of;
  std::vector<std::string> str_of;
  std::vector<int64_t> tok_len;
  auto add = [&](const std::string& s) {
    if (id_of.count(s)) return;
    id_of.emplace(s, static_cast<int32_t>(str_of.size()));
    str_of.push_back(s);
    tok_len.push_back(char_count(s));
  };
  for (const auto& s : opts_.special_tokens) add(s);
  std::vector<std::string> alphabet;  // UTF-8 byte order is code point order
  for (int b = 0; b < 256; ++b) alphabet.push_back(byte_to_unicode(static_cast<uint8_t>(b)));
  std::sort(alphabet.begin(), alphabet.end());
  for (const auto& a : alphabet) add(a);
  int32_t id_of_byte[256];
  for (int b = 0; b < 256; ++b) id_of_byte[b] = id_of.at(byte_to_unicode(static_cast<uint8_t>(b)));

  // 3. Words in byte order (deterministic whatever the counting threads); single symbols can
  // never hold a pair and are left out.
  std::vector<std::pair<std::string, int64_t>> items;
  items.reserve(word_counts_.size());
  while (!word_counts_.empty()) {
    auto node = word_counts_.extract(word_counts_.begin());
    if (node.key().size() >= 2) items.emplace_back(std::move(node.key()), node.mapped());
  }
  std::sort(items.begin(), items.end());
  Words words;
  for (const auto& [w, c] : items) {
    words.off.push_back(words.syms.size());
    words.len.push_back(static_cast<int32_t>(w.size()));
    words.count.push_back(c);
    for (unsigned char ch : w) words.syms.push_back(id_of_byte[ch]);
  }
  std::vector<std::pair<std::string, int64_t>>().swap(items);
  const int32_t n_words = static_cast<int32_t>(words.len.size());

  // 4. Pair counts and, per pair, the words holding it.
  std::unordered_map<uint64_t, int64_t> counts;  // never erased: as in HF, a count may reach 0
  auto count_of = [&](uint64_t p) -> int64_t {
    auto it = counts.find(p);
    return it == counts.end() ? 0 : it->second;
  };
  std::vector<Entry> heap;
  uint64_t seq = 0;
  std::vector<std::pair<uint64_t, int32_t>> where;
  auto push_where = [&] {  // one entry per pair in `where` whose count is positive
    std::sort(where.begin(), where.end());
    where.erase(std::unique(where.begin(), where.end()), where.end());
    for (size_t i = 0; i < where.size();) {
      size_t j = i;
      while (j < where.size() && where[j].first == where[i].first) ++j;
      int64_t c = count_of(where[i].first);
      if (c > 0) {
        Entry e{c, where[i].first, seq++, {}};
        e.pos.reserve(j - i);
        for (size_t k = i; k < j; ++k) e.pos.push_back(where[k].second);
        heap.push_back(std::move(e));
        std::push_heap(heap.begin(), heap.end(), EntryLess());
      }
      i = j;
    }
    where.clear();
  };
  for (int32_t w = 0; w < n_words; ++w) {
    const int32_t* s = words.syms.data() + words.off[w];
    for (int32_t i = 0; i + 1 < words.len[w]; ++i) {
      uint64_t p = pair_key(s[i], s[i + 1]);
      counts[p] += words.count[w];
      where.emplace_back(p, w);
    }
  }
  push_where();

  // 5. Merges.
  std::vector<std::pair<uint64_t, int32_t>> merges;  // (pair, new id) in order
  const int64_t total =
      std::max<int64_t>(0, opts_.vocab_size - static_cast<int64_t>(str_of.size()));
  const int n_threads = thread_count();
  std::vector<std::vector<Change>> changes(n_threads);
  if (progress) progress(0, total);
  while (static_cast<int64_t>(id_of.size()) < opts_.vocab_size && !heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), EntryLess());
    Entry top = std::move(heap.back());
    heap.pop_back();
    const int64_t now = count_of(top.pair);
    if (top.count != now) {
      top.count = now;
      heap.push_back(std::move(top));
      std::push_heap(heap.begin(), heap.end(), EntryLess());
      continue;
    }
    if (top.count < 1 || opts_.min_frequency > top.count) break;
    const int32_t a = pair_left(top.pair), b = pair_right(top.pair);
    std::string merged = str_of[a] + str_of[b];
    auto it = id_of.find(merged);
    int32_t r;
    if (it != id_of.end()) {
      r = it->second;
    } else {
      r = static_cast<int32_t>(str_of.size());
      id_of.emplace(merged, r);
      str_of.push_back(std::move(merged));
      tok_len.push_back(tok_len[a] + tok_len[b]);
    }
    merges.emplace_back(top.pair, r);

    const auto& pos = top.pos;
    const int nt = pos.size() >= kParallelMergeWords ? n_threads : 1;
    run_parallel(nt, [&](int t) {
      changes[t].clear();
      size_t lo = pos.size() * t / nt, hi = pos.size() * (t + 1) / nt;
      for (size_t k = lo; k < hi; ++k) words.merge(pos[k], a, b, r, tok_len, max_len, changes[t]);
    });
    for (int t = 0; t < nt; ++t)
      for (const Change& c : changes[t]) {
        counts[c.pair] += c.delta * words.count[c.word];
        if (c.delta > 0) where.emplace_back(c.pair, c.word);
      }
    push_where();
    if (progress) progress(static_cast<int64_t>(merges.size()), total);
  }

  // A pair merged twice (its result reached by another pair in between) keeps its last rank,
  // as HF's merge map does.
  std::unordered_map<uint64_t, size_t> last_rank;
  for (size_t i = 0; i < merges.size(); ++i) last_rank[merges[i].first] = i;
  BpeVocab v;
  for (size_t i = 0; i < merges.size(); ++i) {
    if (last_rank[merges[i].first] != i) continue;
    v.merges.emplace_back(str_of[pair_left(merges[i].first)], str_of[pair_right(merges[i].first)]);
  }
  v.tokens = std::move(str_of);
  v.special_tokens = opts_.special_tokens;
  v.pattern_name = pattern_name_;
  v.pattern = pattern_;
  return v;
}

namespace {

using ojson = nlohmann::ordered_json;

// The specials in the roles tokenizer_config.json names ("" when none fits): the first special
// whose lower-cased text holds one of the keys, else the fallback.
struct Roles {
  std::string bos, eos, pad;
};
Roles roles_of(const std::vector<std::string>& specials) {
  auto find = [&](std::initializer_list<const char*> keys, const std::string& fallback) {
    for (const auto& s : specials) {
      std::string low = s;
      for (auto& c : low) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      for (const char* k : keys)
        if (low.find(k) != std::string::npos) return s;
    }
    return fallback;
  };
  Roles r;
  r.eos = find({"end", "eos", "</s>"}, specials.empty() ? "" : specials.front());
  r.bos = find({"begin", "bos", "<s>"}, r.eos);
  r.pad = find({"pad"}, "");
  return r;
}

// tokenizer.json around the parts that training fills in (HF's key order).
constexpr const char* kTokenizerJson = R"({
  "version": "1.0", "truncation": null, "padding": null, "added_tokens": [], "normalizer": null,
  "pre_tokenizer": null,
  "post_processor": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": false, "use_regex": false},
  "decoder": {"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false},
  "model": {"type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            "ignore_merges": false, "vocab": {}, "merges": []}})";
constexpr const char* kByteLevel =
    R"({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": false})";

}  // namespace

std::string bpe_tokenizer_json(const BpeVocab& v) {
  ojson doc = ojson::parse(kTokenizerJson);
  ojson byte_level = ojson::parse(kByteLevel);
  if (v.pattern_name == "gpt2") {
    byte_level["use_regex"] = true;
    doc["pre_tokenizer"] = byte_level;
  } else {
    ojson split = ojson::parse(
        R"({"type": "Split", "pattern": {"Regex": ""}, "behavior": "Isolated", "invert": false})");
    split["pattern"]["Regex"] = v.pattern;
    doc["pre_tokenizer"] = {{"type", "Sequence"},
                            {"pretokenizers", ojson::array({split, byte_level})}};
  }
  std::unordered_map<std::string, int32_t> id_of;
  for (size_t i = 0; i < v.tokens.size(); ++i) id_of.emplace(v.tokens[i], static_cast<int32_t>(i));
  for (const auto& s : v.special_tokens) {
    ojson t = ojson::parse(
        R"({"id": 0, "content": "", "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})");
    t["id"] = id_of.at(s);
    t["content"] = s;
    doc["added_tokens"].push_back(std::move(t));
  }
  // Appended directly: the tokens are distinct, and ordered_map's own insert searches linearly.
  auto& vocab = doc["model"]["vocab"].get_ref<ojson::object_t&>();
  vocab.reserve(v.tokens.size());
  for (size_t i = 0; i < v.tokens.size(); ++i)
    vocab.emplace_back(v.tokens[i], static_cast<int32_t>(i));
  auto& merges = doc["model"]["merges"];
  for (const auto& [l, r] : v.merges) merges.push_back(ojson::array({l, r}));
  return doc.dump(2, ' ', false, ojson::error_handler_t::strict) + "\n";
}

std::string bpe_tokenizer_config_json(const BpeVocab& v) {
  Roles r = roles_of(v.special_tokens);
  auto tok = [](const std::string& s) { return s.empty() ? ojson(nullptr) : ojson(s); };
  ojson cfg = {{"tokenizer_class", "PreTrainedTokenizerFast"},
               {"bos_token", tok(r.bos)},
               {"eos_token", tok(r.eos)},
               {"pad_token", tok(r.pad)},
               {"unk_token", nullptr},
               {"model_max_length", 1000000000},
               {"clean_up_tokenization_spaces", false}};
  return cfg.dump(2) + "\n";
}

std::string bpe_special_tokens_map_json(const BpeVocab& v) {
  Roles r = roles_of(v.special_tokens);
  ojson m = ojson::object();
  for (const auto& [key, tok] :
       {std::pair{"bos_token", r.bos}, {"eos_token", r.eos}, {"pad_token", r.pad}})
    if (!tok.empty()) m[key] = tok;
  return m.dump(2) + "\n";
}

void save_bpe_tokenizer(const BpeVocab& v, const std::string& dir) {
  const std::string files[3][2] = {{"tokenizer.json", bpe_tokenizer_json(v)},
                                   {"tokenizer_config.json", bpe_tokenizer_config_json(v)},
                                   {"special_tokens_map.json", bpe_special_tokens_map_json(v)}};
  if (path_exists(dir)) {
    if (!is_directory(dir)) usage_error("output {} exists and is not a directory", dir);
    for (const auto& f : files) write_file_atomic(join_path(dir, f[0]), f[1]);
    return;
  }
  std::string tmp = dir;
  while (!tmp.empty() && tmp.back() == '/') tmp.pop_back();
  tmp += ".tmp." + std::to_string(::getpid());
  try {
    make_dirs(tmp);
    for (const auto& f : files) write_file_atomic(join_path(tmp, f[0]), f[1]);
    rename_path(tmp, dir);
  } catch (...) {
    if (path_exists(tmp)) remove_all(tmp);
    throw;
  }
}

}  // namespace reef
