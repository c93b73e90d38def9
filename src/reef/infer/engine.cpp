// The continuous-batching engine (see engine.h).
#include "reef/infer/engine.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <random>
#include <unordered_map>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/nn/slot_kv_cache.h"

namespace reef {

bool RequestStream::next(TokenEvent* event, EngineClock::time_point deadline) {
  std::unique_lock<std::mutex> lk(mu_);
  if (!cv_.wait_until(lk, deadline, [&] { return !events_.empty(); })) return false;
  *event = std::move(events_.front());
  events_.pop_front();
  return true;
}

bool RequestStream::done() const {
  std::lock_guard<std::mutex> lk(mu_);
  return finished_ >= n_ && events_.empty();
}

void RequestStream::push(TokenEvent event) {
  {
    std::lock_guard<std::mutex> lk(mu_);
    if (event.finished) ++finished_;
    events_.push_back(std::move(event));
  }
  cv_.notify_all();
}

struct Engine::Store {
  SlotKVCache cache;
};

struct Engine::Sequence {
  std::shared_ptr<RequestStream> stream;
  int64_t index = 0;
  std::vector<int32_t> prompt;
  RequestParams params;
  at::Generator gen;
  int64_t slot = -1;
  int64_t cached = 0;    // tokens stored in the slot
  int32_t pending = -1;  // sampled, not yet fed to the model
  std::vector<int32_t> generated;
  std::unordered_map<int32_t, int64_t> counts;  // occurrences in `generated`
  size_t released = 0;                          // bytes of text already sent
  bool finished = false;
  bool kv_valid = true;  // false once a failed step left the slot's contents unknown
  std::vector<TokenLogprob> prompt_logprobs;  // filled while prefilling, sent on the first event
  std::optional<JsonMatcher> matcher;         // with a grammar: the output read so far
};

namespace {

// Bytes at the end of `s` that start a UTF-8 character not yet complete.
size_t incomplete_utf8_tail(const std::string& s) {
  const size_t n = s.size();
  for (size_t back = 1; back <= 4 && back <= n; ++back) {
    const auto c = static_cast<unsigned char>(s[n - back]);
    if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
    const size_t need = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    return need > back ? back : 0;
  }
  return 0;
}

// Length of the longest suffix of `s` that is a proper prefix of a stop string.
size_t stop_prefix_tail(const std::string& s, const std::vector<std::string>& stops) {
  size_t best = 0;
  for (const auto& stop : stops) {
    for (size_t len = std::min(stop.size() - (stop.empty() ? 0 : 1), s.size()); len > best; --len) {
      if (s.compare(s.size() - len, len, stop, 0, len) == 0) {
        best = len;
        break;
      }
    }
  }
  return best;
}

// The log-probs of prompt tokens first .. first + R - 1 from the logits [R, V] (float, CPU)
// that predict them, with the top k of each row.
void add_prompt_logprobs(Engine::Sequence& seq, const torch::Tensor& logits, int64_t first) {
  auto logp = torch::log_softmax(logits, 1);  // [R, V]
  const int64_t rows = logp.size(0);
  const int64_t k = std::min<int64_t>(seq.params.prompt_logprobs, logp.size(1));
  torch::Tensor top_vals, top_idx;
  if (k > 0) std::tie(top_vals, top_idx) = logp.topk(k, 1);
  auto acc = logp.accessor<float, 2>();
  for (int64_t j = 0; j < rows; ++j) {
    TokenLogprob t;
    t.token = seq.prompt[static_cast<size_t>(first + j)];
    t.logprob = acc[j][t.token];
    for (int64_t i = 0; i < k; ++i) {
      t.top.emplace_back(static_cast<int32_t>(top_idx[j][i].item<int64_t>()),
                         top_vals[j][i].item<double>());
    }
    seq.prompt_logprobs.push_back(std::move(t));
  }
}

// Hands the prompt's log-probs to the sequence's first event.
void attach_prompt_logprobs(Engine::Sequence& seq, TokenEvent& ev) {
  ev.prompt_logprobs = std::move(seq.prompt_logprobs);
  seq.prompt_logprobs.clear();
}

}  // namespace

Engine::Engine(CausalLM model, const Tokenizer& tokenizer, const EngineOptions& options,
               std::function<void(const EngineStep&)> on_step)
    : model_(std::move(model)),
      tokenizer_(tokenizer),
      options_(options),
      on_step_(std::move(on_step)),
      device_(model_->parameters().front().device()) {
  const auto& cfg = model_->config();
  if (options_.prefill_chunk < 1)
    usage_error("prefill chunk must be >= 1, got {}", options_.prefill_chunk);
  if (options_.max_slots < 1) usage_error("max batch must be >= 1, got {}", options_.max_slots);
  if (options_.max_waiting < 0) usage_error("max queue must be >= 0, got {}", options_.max_waiting);
  slot_len_ =
      options_.slot_len > 0 ? std::min(options_.slot_len, cfg.max_seq_len) : cfg.max_seq_len;
  SlotKVCacheOptions o;
  o.n_layers = cfg.n_layers;
  o.n_kv_heads = cfg.n_kv_heads;
  o.head_dim = cfg.head_dim;
  o.max_len = slot_len_;
  o.dtype = model_->parameters().front().scalar_type();
  o.device = device_;
  const int64_t per_slot = SlotKVCache::bytes_per_slot(o);
  n_slots_ = std::min(options_.max_slots, options_.kv_memory_bytes / per_slot);
  if (n_slots_ < 1) {
    usage_error("a KV memory budget of {} bytes holds no sequence: one slot of {} tokens needs {}",
                options_.kv_memory_bytes, slot_len_, per_slot);
  }
  o.n_slots = n_slots_;
  store_ = std::make_unique<Store>(Store{SlotKVCache(o)});
  for (int64_t s = n_slots_ - 1; s >= 0; --s) free_slots_.push_back(s);
  slot_tokens_.resize(static_cast<size_t>(n_slots_));
  slot_released_.assign(static_cast<size_t>(n_slots_), 0);
  slot_adapter_.assign(static_cast<size_t>(n_slots_), 0);
  if (options_.multi_lora) {
    adapter_rows_ = std::make_shared<AdapterRows>();
    enable_multi_lora(model_, adapter_rows_);
  }
  model_->eval();
  thread_ = std::thread([this] { loop(); });
}

Engine::~Engine() { shutdown(); }

std::shared_ptr<RequestStream> Engine::submit(const std::vector<int32_t>& prompt,
                                              const RequestParams& params) {
  auto all = submit_many({prompt}, {params});
  return all.empty() ? nullptr : all[0];
}

std::vector<std::shared_ptr<RequestStream>> Engine::submit_many(
    const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestParams>& params) {
  return enqueue(prompts, params, false);
}

std::shared_ptr<RequestStream> Engine::submit_group(
    const std::vector<std::vector<int32_t>>& prompts, const RequestParams& params) {
  auto all = enqueue(prompts, std::vector<RequestParams>(prompts.size(), params), true);
  return all.empty() ? nullptr : all[0];
}

std::vector<std::shared_ptr<RequestStream>> Engine::enqueue(
    const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestParams>& params,
    bool one_stream) {
  if (prompts.size() != params.size())
    fail("engine: {} prompts with {} request parameters (internal error)", prompts.size(),
         params.size());
  int64_t sequences = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    if (prompts[r].empty()) usage_error("the prompt is empty");
    // A prompt fills its slot at most; one that samples needs room for a token more.
    const bool samples = params[r].sampling.max_new_tokens != 0;
    if (static_cast<int64_t>(prompts[r].size()) + (samples ? 1 : 0) > slot_len_) {
      usage_error("the prompt has {} tokens but the context holds {} (prompt and output)",
                  prompts[r].size(), slot_len_);
    }
    if (params[r].n < 1) usage_error("n must be >= 1, got {}", params[r].n);
    if (params[r].adapter && !adapter_rows_)
      usage_error("adapter '{}': this engine was not started for LoRA adapters",
                  params[r].adapter->name);
    sequences += params[r].n;
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  if (prompts.empty()) return streams;
  std::lock_guard<std::mutex> lk(mu_);
  if (stopping_ || waiting_count_ + sequences > options_.max_waiting + n_slots_ - running_count_) {
    return streams;
  }
  // One lock for all: the loop sees every request of the call at once.
  int64_t index = 0;
  for (size_t r = 0; r < prompts.size(); ++r) {
    if (!one_stream || r == 0) {
      streams.push_back(std::make_shared<RequestStream>(one_stream ? sequences : params[r].n));
      index = 0;
    }
    for (int64_t i = 0; i < params[r].n; ++i) {
      auto seq = std::make_unique<Sequence>();
      seq->stream = streams.back();
      seq->index = index++;
      seq->prompt = prompts[r];
      seq->params = params[r];
      seq->gen = at::make_generator<at::CPUGeneratorImpl>(params[r].sampling.seed +
                                                          static_cast<uint64_t>(i));
      if (params[r].grammar) seq->matcher.emplace(params[r].grammar);
      waiting_.push_back(std::move(seq));
    }
  }
  waiting_count_ += sequences;
  cv_.notify_all();
  return streams;
}

void Engine::shutdown() {
  {
    std::lock_guard<std::mutex> lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void Engine::loop() {
  torch::NoGradGuard no_grad;
  while (true) {
    {
      std::unique_lock<std::mutex> lk(mu_);
      cv_.wait(lk, [&] { return stopping_ || !waiting_.empty() || !running_.empty(); });
      if (stopping_ && waiting_.empty() && running_.empty()) return;
    }
    admit_and_drop();
    EngineStep step;
    try {
      prefill_step(&step);
      decode_step(&step);
    } catch (const std::exception& e) {
      // A failed forward leaves the slots' contents unknown: end every running sequence.
      log_line(LogLevel::kError, std::string("engine step failed: ") + e.what());
      for (auto& seq : running_) {
        seq->kv_valid = false;
        if (!seq->finished) finish(*seq, "error", e.what());
      }
    }
    if (adapter_rows_) adapter_rows_->clear();  // no adapter outlives its sequences here
    release_finished();
    step.running = running_count_;
    step.waiting = waiting_count_;
    if (on_step_ && (step.decode_rows > 0 || step.prefill_tokens > 0)) on_step_(step);
  }
}

void Engine::admit_and_drop() {
  for (auto& seq : running_) {
    if (!seq->finished && seq->stream->cancelled()) {
      finish(*seq, "cancelled");
      ++cancelled_count_;
    }
  }
  release_finished();
  std::lock_guard<std::mutex> lk(mu_);
  for (auto it = waiting_.begin(); it != waiting_.end();) {
    if ((*it)->stream->cancelled()) {
      it = waiting_.erase(it);
      --waiting_count_;
      ++cancelled_count_;
    } else {
      ++it;
    }
  }
  while (!waiting_.empty() && !free_slots_.empty()) {
    // A prompt whose start a running sequence is still prefilling waits for it (prefill runs
    // one chunk per step anyway), then copies it: n > 1 choices and GRPO groups prefill once.
    if (prefill_pending_for(*waiting_.front())) break;
    auto seq = std::move(waiting_.front());
    waiting_.pop_front();
    --waiting_count_;
    assign_slot(*seq);
    running_.push_back(std::move(seq));
    ++running_count_;
  }
}

namespace {

// Length of the common start of `a` and `b`, at most `limit`.
int64_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b, int64_t limit) {
  const int64_t n =
      std::min({limit, static_cast<int64_t>(a.size()), static_cast<int64_t>(b.size())});
  int64_t i = 0;
  while (i < n && a[static_cast<size_t>(i)] == b[static_cast<size_t>(i)]) ++i;
  return i;
}

}  // namespace

namespace {
uint64_t adapter_uid(const RequestParams& p) { return p.adapter ? p.adapter->uid : 0; }
}  // namespace

bool Engine::prefill_pending_for(const Sequence& seq) const {
  if (!options_.prefix_caching || seq.params.prompt_logprobs >= 0) return false;
  const auto limit = static_cast<int64_t>(seq.prompt.size()) - 1;
  for (const auto& r : running_) {
    if (r->finished || !r->kv_valid || adapter_uid(r->params) != adapter_uid(seq.params)) continue;
    const int64_t shared = common_prefix(r->prompt, seq.prompt, limit);
    // Worth waiting for: a start of at least 16 tokens and half the prompt, not cached yet.
    if (shared >= 16 && 2 * shared >= limit && r->cached < shared) return true;
  }
  return false;
}

void Engine::assign_slot(Sequence& seq) {
  const auto prompt_len = static_cast<int64_t>(seq.prompt.size());
  // The least recently released free slot is taken (evicting what it held) ...
  size_t free_at = 0;
  for (size_t i = 1; i < free_slots_.size(); ++i) {
    if (slot_released_[static_cast<size_t>(free_slots_[i])] <
        slot_released_[static_cast<size_t>(free_slots_[free_at])])
      free_at = i;
  }
  seq.slot = free_slots_[free_at];
  free_slots_.erase(free_slots_.begin() + static_cast<std::ptrdiff_t>(free_at));
  // ... and gets the longest prompt start any slot holds: its own tokens, another free slot's
  // (copied, so that slot keeps them too) or a running prompt's cached part (copied). At least
  // the prompt's last token is fed (its logits give the first output token), and a request for
  // the prompt's log-probs needs every position computed.
  const int64_t limit = seq.params.prompt_logprobs >= 0 ? 0 : prompt_len - 1;
  // Keys and values depend on the adapter too: only the same adapter's tokens match.
  const uint64_t adapter = adapter_uid(seq.params);
  auto held = [&](int64_t slot) {
    return slot_adapter_[static_cast<size_t>(slot)] == adapter
               ? common_prefix(slot_tokens_[static_cast<size_t>(slot)], seq.prompt, limit)
               : 0;
  };
  int64_t best = 0, from = -1;
  if (options_.prefix_caching && limit > 0) {
    best = held(seq.slot);
    from = seq.slot;
    for (int64_t slot : free_slots_) {
      const int64_t m = held(slot);
      if (m > best) best = m, from = slot;
    }
    for (const auto& r : running_) {
      if (r->finished || !r->kv_valid || adapter_uid(r->params) != adapter) continue;
      const int64_t m = common_prefix(r->prompt, seq.prompt, std::min(limit, r->cached));
      if (m > best) best = m, from = r->slot;
    }
  }
  if (best > 0 && from != seq.slot) store_->cache.copy_prefix(from, seq.slot, best);
  slot_tokens_[static_cast<size_t>(seq.slot)].clear();
  slot_adapter_[static_cast<size_t>(seq.slot)] = adapter;
  seq.cached = best;
  prefix_query_tokens_ += prompt_len;
  prefix_hit_tokens_ += best;
}

void Engine::prefill_step(EngineStep* step) {
  // The oldest sequence still reading its prompt gets one chunk.
  for (auto& seq_ptr : running_) {
    Sequence& seq = *seq_ptr;
    const auto prompt_len = static_cast<int64_t>(seq.prompt.size());
    if (seq.finished || seq.cached >= prompt_len) continue;
    const int64_t chunk = std::min(options_.prefill_chunk, prompt_len - seq.cached);
    std::vector<int64_t> ids(seq.prompt.begin() + seq.cached,
                             seq.prompt.begin() + seq.cached + chunk);
    auto input = torch::tensor(ids, torch::kInt64).unsqueeze(0).to(device_);  // [1, T]
    store_->cache.set_batch({seq.slot}, {seq.cached});
    if (adapter_rows_) adapter_rows_->set({seq.params.adapter});
    auto logits = model_->forward(input, &store_->cache);  // [1, T, V]
    if (seq.params.prompt_logprobs >= 0) {
      // Row j predicts prompt token cached + j + 1 (the last row of the last chunk predicts the
      // first output token instead).
      const int64_t rows = std::min(chunk, prompt_len - 1 - seq.cached);
      if (rows > 0) {
        add_prompt_logprobs(seq, logits[0].narrow(0, 0, rows).to(torch::kFloat).cpu(),
                            seq.cached + 1);
      }
    }
    seq.cached += chunk;
    step->prefill_tokens = chunk;
    if (seq.cached == prompt_len) {
      if (seq.params.sampling.max_new_tokens == 0) {
        finish(seq, "length");
      } else {
        take_token(seq, logits[0][chunk - 1].to(torch::kFloat).cpu());
      }
    }
    return;
  }
}

void Engine::decode_step(EngineStep* step) {
  std::vector<Sequence*> rows;
  std::vector<int64_t> ids, slots, lengths;
  for (auto& seq : running_) {
    if (seq->finished || seq->pending < 0) continue;
    rows.push_back(seq.get());
    ids.push_back(seq->pending);
    slots.push_back(seq->slot);
    lengths.push_back(seq->cached);
  }
  if (rows.empty()) return;
  auto input = torch::tensor(ids, torch::kInt64).unsqueeze(1).to(device_);  // [B, 1]
  store_->cache.set_batch(slots, lengths);
  if (adapter_rows_) {
    std::vector<std::shared_ptr<const ServedAdapter>> adapters;
    for (const Sequence* r : rows) adapters.push_back(r->params.adapter);
    adapter_rows_->set(std::move(adapters));
  }
  auto logits =
      model_->forward(input, &store_->cache).select(1, 0).to(torch::kFloat).cpu();  // [B, V]
  step->decode_rows = static_cast<int64_t>(rows.size());
  for (size_t b = 0; b < rows.size(); ++b) {
    rows[b]->cached += 1;
    rows[b]->pending = -1;
    take_token(*rows[b], logits[static_cast<int64_t>(b)]);
  }
}

void Engine::take_token(Sequence& seq, const torch::Tensor& logits_in) {
  const RequestParams& p = seq.params;
  torch::Tensor logits = logits_in;  // [V]
  if (seq.matcher) {
    // Only tokens that keep the output a completable document within the budget left.
    if (!token_trie_) {
      token_bytes_.resize(static_cast<size_t>(logits.size(0)));
      for (int64_t id = 0; id < logits.size(0) && id < tokenizer_.vocab_size(); ++id)
        token_bytes_[static_cast<size_t>(id)] = tokenizer_.decode({static_cast<int32_t>(id)});
      token_trie_ = std::make_unique<TokenTrie>(token_bytes_);
    }
    const int64_t total = static_cast<int64_t>(seq.prompt.size() + seq.generated.size());
    const int64_t left =
        std::min(p.sampling.max_new_tokens - static_cast<int64_t>(seq.generated.size()),
                 slot_len_ - total) -
        1;
    const auto allowed = token_trie_->allowed(*seq.matcher, tokenizer_.eos_id(), left);
    auto mask = torch::zeros({logits.size(0)}, torch::kBool);
    auto* m = mask.data_ptr<bool>();
    bool any = false;
    for (size_t id = 0; id < allowed.size(); ++id) m[id] = !allowed[id], any = any || allowed[id];
    if (!any) {
      finish(seq, "error", "constrained decoding: no token can continue the document");
      return;
    }
    logits = logits.masked_fill(mask, -std::numeric_limits<float>::infinity());
  }
  if ((p.presence_penalty != 0 || p.frequency_penalty != 0) && !seq.counts.empty()) {
    logits = logits.clone();
    auto* data = logits.data_ptr<float>();
    for (const auto& [id, count] : seq.counts) {
      data[id] -=
          static_cast<float>(p.presence_penalty + p.frequency_penalty * static_cast<double>(count));
    }
  }
  const int64_t id = sample_next(logits, p.sampling, seq.gen);
  TokenEvent ev;
  ev.index = seq.index;
  if (p.logprobs >= 0) {
    auto logp = torch::log_softmax(logits_in, 0);
    ev.logprob = logp[id].item<double>();
    const int64_t k = std::min<int64_t>(p.logprobs, logp.size(0));
    if (k > 0) {
      auto [vals, idx] = logp.topk(k);
      for (int64_t i = 0; i < k; ++i) {
        ev.top_logprobs.emplace_back(static_cast<int32_t>(idx[i].item<int64_t>()),
                                     vals[i].item<double>());
      }
    }
  }
  if ((p.sampling.stop_at_eos || seq.matcher) && id == tokenizer_.eos_id()) {
    // eos is not part of the output, nor are its logprobs; the finishing event names it.
    finish(seq, "stop", "", static_cast<int32_t>(id), ev.logprob, std::move(ev.top_logprobs));
    return;
  }
  seq.generated.push_back(static_cast<int32_t>(id));
  seq.counts[static_cast<int32_t>(id)] += 1;
  if (seq.matcher) seq.matcher->feed(token_bytes_[static_cast<size_t>(id)]);
  ev.token = static_cast<int32_t>(id);
  // Release what can no longer change: not a possible start of a stop string, no half character.
  std::string text = tokenizer_.decode(seq.generated);
  std::string reason;
  for (const auto& s : p.sampling.stop) {
    auto pos = s.empty() ? std::string::npos : text.find(s);
    if (pos != std::string::npos) {
      text.resize(pos);
      reason = "stop";
      break;
    }
  }
  const int64_t total = static_cast<int64_t>(seq.prompt.size() + seq.generated.size());
  // A whole document that nothing may follow ends the sequence (also on its last allowed token).
  if (reason.empty() && seq.matcher && seq.matcher->closed()) reason = "stop";
  if (reason.empty() && (static_cast<int64_t>(seq.generated.size()) >= p.sampling.max_new_tokens ||
                         total >= slot_len_)) {
    reason = "length";
  }
  size_t safe = text.size();
  if (reason.empty()) {
    safe -= std::max(stop_prefix_tail(text, p.sampling.stop), incomplete_utf8_tail(text));
  }
  if (safe > seq.released) {
    ev.text = text.substr(seq.released, safe - seq.released);
    seq.released = safe;
  }
  ev.time = EngineClock::now();
  attach_prompt_logprobs(seq, ev);
  seq.stream->push(std::move(ev));
  if (!reason.empty()) {
    seq.released = std::string::npos;  // all of the output is out
    finish(seq, reason);
  } else {
    seq.pending = static_cast<int32_t>(id);
  }
}

void Engine::finish(Sequence& seq, const std::string& reason, const std::string& error, int32_t eos,
                    double eos_logprob, std::vector<std::pair<int32_t, double>> eos_top) {
  seq.finished = true;
  TokenEvent ev;
  ev.top_logprobs = std::move(eos_top);
  ev.index = seq.index;
  ev.finished = true;
  ev.eos_token = eos;
  ev.eos_logprob = eos_logprob;
  ev.finish_reason = reason;
  ev.error = error;
  if (seq.released != std::string::npos) {  // flush what was held back
    std::string text = tokenizer_.decode(seq.generated);
    if (text.size() > seq.released) ev.text = text.substr(seq.released);
    seq.released = std::string::npos;
  }
  ev.prompt_tokens = static_cast<int64_t>(seq.prompt.size());
  ev.completion_tokens = static_cast<int64_t>(seq.generated.size());
  ev.time = EngineClock::now();
  attach_prompt_logprobs(seq, ev);
  seq.stream->push(std::move(ev));
}

void Engine::release_finished() {
  for (auto it = running_.begin(); it != running_.end();) {
    if ((*it)->finished) {
      Sequence& seq = **it;
      // The slot keeps the keys and values of the first `cached` tokens of prompt + output.
      auto& held = slot_tokens_[static_cast<size_t>(seq.slot)];
      held.clear();
      if (options_.prefix_caching && seq.kv_valid) {
        held = seq.prompt;
        held.insert(held.end(), seq.generated.begin(), seq.generated.end());
        held.resize(static_cast<size_t>(std::min<int64_t>(seq.cached, held.size())));
      }
      slot_released_[static_cast<size_t>(seq.slot)] = ++releases_;
      free_slots_.push_back(seq.slot);
      it = running_.erase(it);
      --running_count_;
    } else {
      ++it;
    }
  }
}

}  // namespace reef
