// The continuous-batching engine behind `reef serve`: one loop thread steps every running
// sequence together. Requests queue (bounded: a full queue is refused), are admitted into free
// KV slots between steps (the slot count comes from a memory budget), prefill their prompt in
// chunks (one chunk per step, so a long prompt never stalls the decoding rows for long), then
// decode one token per step in a batched forward where every row has its own position and
// cached length (nn/slot_kv_cache.h). Finished or cancelled sequences leave at once and free
// their slot for the next waiting one. Token choice mirrors generate() exactly (same sampler,
// same stop rules), so a greedy request gives generate()'s tokens.
#pragma once

#include <torch/torch.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "reef/infer/generate.h"
#include "reef/infer/json_constraint.h"
#include "reef/models/causal_lm.h"
#include "reef/models/multi_lora.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

using EngineClock = std::chrono::steady_clock;

struct EngineOptions {
  int64_t max_slots = 16;               // sequences decoding at once (upper bound)
  int64_t kv_memory_bytes = 1LL << 30;  // budget for the slot store; may lower max_slots
  int64_t slot_len = 0;                 // tokens per slot (prompt + output); 0 = max_seq_len
  int64_t prefill_chunk = 64;           // prompt tokens fed per step
  int64_t max_waiting = 256;            // queued sequences beyond which submit() refuses
  // Prefix caching: a finished sequence's slot keeps its keys and values; a new prompt that
  // starts with tokens some slot holds (a free slot's last sequence, or a running one's prompt)
  // reuses them instead of prefilling them (taking that free slot, or copying the prefix into
  // its own). Free slots are reused least recently used first, which evicts what they held.
  bool prefix_caching = true;
  // Requests may name a LoRA adapter (RequestParams::adapter): the engine hooks every Linear of
  // the model (models/multi_lora.h) and gives each row of a forward its own adapter.
  bool multi_lora = false;
};

// What one request asks for, on top of generate()'s SamplingParams (temperature, top_k, top_p,
// seed, max_new_tokens, stop, stop_at_eos; use_cache is ignored).
struct RequestParams {
  SamplingParams sampling;
  double presence_penalty = 0;   // subtracted once from each token already generated
  double frequency_penalty = 0;  // subtracted per occurrence in the generated tokens
  int64_t logprobs = -1;         // -1 = none; k >= 0: the chosen token's log-prob and the top k
  int64_t prompt_logprobs = -1;  // -1 = none; k >= 0: each prompt token's log-prob and the top k
  int64_t n = 1;                 // independent sequences; sequence i samples with seed + i
  // The LoRA adapter to run with (null: the base model); needs EngineOptions::multi_lora.
  std::shared_ptr<const ServedAdapter> adapter;
  // Constrained decoding (infer/json_constraint.h): every sampled token keeps the output a
  // prefix of a document the grammar admits that can still end within the token budget; the
  // sequence ends ("stop") as soon as the document is whole and nothing may follow it, or at
  // eos once it is whole. Null: unconstrained.
  std::shared_ptr<const JsonGrammar> grammar;
  // sampling.max_new_tokens == 0 reads the prompt and finishes ("length") without sampling:
  // scoring only (with prompt_logprobs).
};

// One token's log-prob under the model and the k likeliest tokens at its position.
struct TokenLogprob {
  int32_t token = -1;
  double logprob = 0;
  std::vector<std::pair<int32_t, double>> top;  // (id, log-prob), likeliest first
};

// One step of one sequence: a new token (token >= 0) and/or its end (finished).
struct TokenEvent {
  int64_t index = 0;   // sequence within the request (0 .. n-1)
  int32_t token = -1;  // the generated id, -1 for an event that only finishes
  std::string text;    // text released by this event (held back while it may be a stop string
                       // or an incomplete UTF-8 character; the final event flushes)
  double logprob = 0;  // log-softmax of the model's logits for `token` (when logprobs >= 0)
  std::vector<std::pair<int32_t, double>> top_logprobs;  // the top k (id, log-prob)
  bool finished = false;
  std::string finish_reason;  // "stop" (eos or stop string), "length", or "error"
  std::string error;          // when finish_reason == "error"
  // On a finishing event: the eos id when the sequence sampled it (not an output token), and
  // its log-prob and top_logprobs (when logprobs >= 0); -1 otherwise.
  int32_t eos_token = -1;
  double eos_logprob = 0;
  int64_t prompt_tokens = 0, completion_tokens = 0;  // on the finishing event
  // With prompt_logprobs >= 0, on the sequence's first event: prompt tokens 1 .. P-1 (the first
  // has no context to be scored in).
  std::vector<TokenLogprob> prompt_logprobs;
  EngineClock::time_point time;
};

// The events of one request, from the engine thread to the consumer (an HTTP handler).
class RequestStream {
 public:
  explicit RequestStream(int64_t n) : n_(n) {}
  // Waits for the next event until `deadline`; false on timeout.
  bool next(TokenEvent* event, EngineClock::time_point deadline);
  // True once every sequence has finished and all events were taken.
  bool done() const;
  // The consumer is gone (client disconnected, timeout): the engine drops the request's
  // sequences before its next step and frees their slots.
  void cancel() { cancelled_ = true; }
  bool cancelled() const { return cancelled_; }
  void push(TokenEvent event);  // engine side

 private:
  const int64_t n_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::deque<TokenEvent> events_;
  int64_t finished_ = 0;
  std::atomic<bool> cancelled_{false};
};

// What one loop iteration did, for metrics.
struct EngineStep {
  int64_t decode_rows = 0;     // sequences in the batched decode forward (0 = none)
  int64_t prefill_tokens = 0;  // prompt tokens of the prefill chunk (0 = none)
  int64_t running = 0, waiting = 0;
};

class Engine {
 public:
  // `model` and `tokenizer` must outlive the engine; the loop thread is the only user of the
  // model from here on. Throws reef::Error(kUsage) when the budget holds no slot.
  Engine(CausalLM model, const Tokenizer& tokenizer, const EngineOptions& options,
         std::function<void(const EngineStep&)> on_step = nullptr);
  ~Engine();  // shutdown()
  Engine(const Engine&) = delete;
  Engine& operator=(const Engine&) = delete;

  // Queues a request; returns nullptr when the queue is full (or the engine is shutting down).
  // Throws reef::Error(kUsage) for an empty prompt or one that leaves no room in a slot.
  std::shared_ptr<RequestStream> submit(const std::vector<int32_t>& prompt,
                                        const RequestParams& params);
  // Queues several requests at once (the loop sees all of them before its next admission, so
  // a batch's schedule does not depend on thread timing); empty when they do not all fit.
  std::vector<std::shared_ptr<RequestStream>> submit_many(
      const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestParams>& params);
  // Several prompts as one request (OpenAI's batched `prompt`): one stream whose sequences are
  // indexed prompt by prompt (prompt p's sequence i has index p * n + i); nullptr when they do
  // not all fit.
  std::shared_ptr<RequestStream> submit_group(const std::vector<std::vector<int32_t>>& prompts,
                                              const RequestParams& params);
  // Finishes every queued and running sequence, then stops the loop thread. Idempotent.
  void shutdown();

  int64_t slots() const { return n_slots_; }
  bool multi_lora() const { return adapter_rows_ != nullptr; }
  int64_t slot_len() const { return slot_len_; }  // the longest sequence a slot holds
  int64_t waiting() const { return waiting_count_; }
  int64_t running() const { return running_count_; }
  int64_t cancelled() const { return cancelled_count_; }  // sequences dropped by cancel()
  // Prompt tokens of admitted sequences, and those of them read from the prefix cache.
  int64_t prefix_query_tokens() const { return prefix_query_tokens_; }
  int64_t prefix_hit_tokens() const { return prefix_hit_tokens_; }

  struct Sequence;  // engine.cpp

 private:
  void loop();
  void admit_and_drop();
  void prefill_step(EngineStep* step);
  void decode_step(EngineStep* step);
  // Samples the next token of `seq` from its logits [V] (float, CPU) and publishes it.
  void take_token(Sequence& seq, const torch::Tensor& logits);
  void finish(Sequence& seq, const std::string& reason, const std::string& error = "",
              int32_t eos = -1, double eos_logprob = 0,
              std::vector<std::pair<int32_t, double>> eos_top = {});
  void release_finished();
  // Gives `seq` a free slot (the caller checked there is one): with prefix caching, the one
  // whose held tokens or a copy of a running slot's prompt match the prompt's start longest.
  void assign_slot(Sequence& seq);
  // Whether a running sequence is prefilling a long start of seq's prompt (so seq should wait
  // and copy it rather than compute it again).
  bool prefill_pending_for(const Sequence& seq) const;
  // Checks the prompts and queues their sequences, into one stream per prompt or one for all.
  std::vector<std::shared_ptr<RequestStream>> enqueue(
      const std::vector<std::vector<int32_t>>& prompts, const std::vector<RequestParams>& params,
      bool one_stream);

  CausalLM model_;
  const Tokenizer& tokenizer_;
  EngineOptions options_;
  std::function<void(const EngineStep&)> on_step_;
  int64_t n_slots_ = 0, slot_len_ = 0;
  struct Store;
  std::unique_ptr<Store> store_;
  torch::Device device_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Sequence>> waiting_;   // under mu_
  bool stopping_ = false;                           // under mu_
  std::vector<std::unique_ptr<Sequence>> running_;  // loop thread only
  std::vector<int64_t> free_slots_;                 // loop thread only
  // Per slot (loop thread only): the tokens whose keys and values it holds (valid for a free
  // slot; a running slot's are its sequence's), and when it was last released (LRU).
  std::vector<std::vector<int32_t>> slot_tokens_;
  std::vector<int64_t> slot_released_;
  std::vector<uint64_t> slot_adapter_;  // the held tokens' adapter (ServedAdapter::uid; 0 = base)
  std::shared_ptr<AdapterRows> adapter_rows_;  // with multi_lora: the next forward's adapters
  std::vector<std::string> token_bytes_;   // each id's text alone ("" for specials), on first use
  std::unique_ptr<TokenTrie> token_trie_;  // the same as a prefix tree (constrained decoding)
  int64_t releases_ = 0;
  std::atomic<int64_t> waiting_count_{0}, running_count_{0}, cancelled_count_{0};
  std::atomic<int64_t> prefix_query_tokens_{0}, prefix_hit_tokens_{0};
  std::thread thread_;
};

}  // namespace reef
