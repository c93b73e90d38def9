// Tests for the continuous-batching path: a SlotKVCache forward (rows at different lengths,
// prompts prefilled in chunks, then batched decode) gives the logits of the plain KVCache path
// that generate() uses, and the Engine's outputs for concurrent requests equal sequential
// generate() calls (greedy and seeded sampling, stop strings, the context limit); admission
// refuses a full queue and a cancelled request frees its slot.
#include "reef/infer/engine.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/nn/slot_kv_cache.h"

namespace reef {
namespace {

ModelConfig tiny(const std::string& arch) {
  ModelConfig m;
  m.arch = arch;
  m.vocab_size = 258;
  m.hidden_size = 64;
  m.n_layers = 2;
  m.n_heads = 4;
  m.n_kv_heads = arch == "gpt2" ? 0 : 2;
  m.max_seq_len = 64;
  m.init_std = 0.2;  // peaky logits so that greedy paths are not decided by rounding
  return m;
}

std::vector<int64_t> ids_of(const std::string& s) {
  std::vector<int64_t> out;
  for (unsigned char c : s) out.push_back(c);
  return out;
}

torch::Tensor row(const std::vector<int64_t>& ids) {
  return torch::tensor(ids, torch::kInt64).unsqueeze(0);  // [1, T]
}

TEST(SlotKVCache, ChunkedPrefillAndBatchedDecodeEqualThePlainCache) {
  torch::NoGradGuard ng;
  for (const char* arch : {"llama", "gpt2"}) {
    torch::manual_seed(3);
    CausalLM model(tiny(arch));
    model->eval();
    const std::vector<std::string> prompts = {"hello", "the quick brown",
                                              "a much longer prompt here"};
    const std::vector<int64_t> slots = {2, 0, 3};  // not in row order
    const int64_t steps = 6;
    // Reference: generate()'s path, the whole prompt then one token at a time in a KVCache.
    std::vector<std::vector<torch::Tensor>> want(prompts.size());  // per step [V]
    std::vector<torch::Tensor> want_prompt(prompts.size());        // [T, V]
    for (size_t r = 0; r < prompts.size(); ++r) {
      KVCache cache;
      auto logits = model->forward(row(ids_of(prompts[r])), &cache);
      want_prompt[r] = logits[0];
      for (int64_t s = 0; s < steps; ++s) {
        logits = model->forward(row({40 + s + static_cast<int64_t>(r)}), &cache);
        want[r].push_back(logits[0][0]);
      }
    }
    const auto& c = model->config();
    SlotKVCacheOptions o;
    o.n_layers = c.n_layers;
    o.n_slots = 4;
    o.n_kv_heads = c.n_kv_heads;
    o.max_len = c.max_seq_len;
    o.head_dim = c.head_dim;
    SlotKVCache slots_cache(o);
    std::vector<int64_t> lengths(prompts.size(), 0);
    for (size_t r = 0; r < prompts.size(); ++r) {  // prefill in chunks of 4, one row at a time
      auto ids = ids_of(prompts[r]);
      for (int64_t at = 0; at < static_cast<int64_t>(ids.size()); at += 4) {
        const int64_t n = std::min<int64_t>(4, ids.size() - at);
        slots_cache.set_batch({slots[r]}, {lengths[r]});
        auto logits = model->forward(row({ids.begin() + at, ids.begin() + at + n}), &slots_cache);
        EXPECT_TRUE(torch::allclose(logits[0], want_prompt[r].narrow(0, at, n), 0, 1e-5))
            << arch << " prompt " << r << " chunk at " << at;
        lengths[r] += n;
      }
    }
    for (int64_t s = 0; s < steps; ++s) {  // batched decode, rows at different lengths
      std::vector<int64_t> ids;
      for (size_t r = 0; r < prompts.size(); ++r) ids.push_back(40 + s + static_cast<int64_t>(r));
      slots_cache.set_batch(slots, lengths);
      auto logits = model->forward(torch::tensor(ids, torch::kInt64).unsqueeze(1), &slots_cache);
      for (size_t r = 0; r < prompts.size(); ++r) {
        double diff = (logits[r][0] - want[r][s]).abs().max().item<double>();
        EXPECT_LT(diff, 1e-5) << arch << " row " << r << " step " << s;
        lengths[r] += 1;
      }
    }
  }
}

struct Collected {
  std::vector<int32_t> tokens;
  std::string text, finish_reason;
  int64_t completion_tokens = -1;
};

// Drains a stream of a request with n sequences.
std::vector<Collected> collect(RequestStream& stream, int64_t n) {
  std::vector<Collected> out(n);
  TokenEvent ev;
  while (!stream.done()) {
    if (!stream.next(&ev, EngineClock::now() + std::chrono::seconds(60))) {
      ADD_FAILURE() << "engine timed out";
      break;
    }
    auto& c = out.at(ev.index);
    if (ev.token >= 0) c.tokens.push_back(ev.token);
    c.text += ev.text;
    if (ev.finished) {
      c.finish_reason = ev.finish_reason;
      c.completion_tokens = ev.completion_tokens;
    }
  }
  return out;
}

TEST(Engine, ConcurrentRequestsEqualSequentialGenerate) {
  for (const char* arch : {"llama", "gpt2"}) {
    torch::manual_seed(5);
    CausalLM model(tiny(arch));
    ByteTokenizer tok;
    EngineOptions eo;
    eo.max_slots = 3;  // fewer slots than requests: some wait for a free one
    eo.prefill_chunk = 3;
    Engine engine(model, tok, eo);
    const std::vector<std::string> prompts = {"Once upon", "a", "The meaning of life is", "xyz",
                                              "hello there, general"};
    std::vector<RequestParams> params(prompts.size());
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto& sp = params[i].sampling;
      sp.temperature = i % 2 == 0 ? 0.0 : 0.8;  // greedy and seeded sampling
      sp.seed = 7 + i;
      sp.max_new_tokens = i == 3 ? 500 : 12 + static_cast<int64_t>(i);  // #3 runs into the context
      sp.stop_at_eos = false;
    }
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto prompt = tok.encode(prompts[i]);
      streams.push_back(engine.submit(prompt, params[i]));
      ASSERT_TRUE(streams.back());
    }
    for (size_t i = 0; i < prompts.size(); ++i) {
      auto got = collect(*streams[i], 1)[0];
      Generation want = generate(model, tok, tok.encode(prompts[i]), params[i].sampling);
      EXPECT_EQ(got.tokens, want.tokens) << arch << " request " << i;
      EXPECT_EQ(got.text, want.text) << arch << " request " << i;
      EXPECT_EQ(got.finish_reason, want.finish_reason) << arch << " request " << i;
      EXPECT_EQ(got.completion_tokens, static_cast<int64_t>(want.tokens.size()));
    }
    // A stop string cuts the text as generate() does; n = 2 samples with seeds seed, seed + 1.
    auto full = generate(model, tok, tok.encode("abc"), params[0].sampling);
    ASSERT_GE(full.text.size(), 6u);
    RequestParams stop = params[1];
    stop.sampling.stop = {full.text.substr(3, 2)};
    stop.sampling.temperature = 0;
    stop.n = 2;
    auto s = engine.submit(tok.encode("abc"), stop);
    auto got = collect(*s, 2);
    Generation want = generate(model, tok, tok.encode("abc"), stop.sampling);
    for (const auto& g : got) {
      EXPECT_EQ(g.text, want.text) << arch;
      EXPECT_EQ(g.finish_reason, "stop") << arch;
    }
  }
}

TEST(Engine, FullQueueIsRefusedAndCancelFreesTheSlot) {
  torch::manual_seed(5);
  CausalLM model(tiny("llama"));
  ByteTokenizer tok;
  EngineOptions eo;
  eo.max_slots = 1;
  eo.max_waiting = 1;
  Engine engine(model, tok, eo);
  EXPECT_EQ(engine.slots(), 1);
  RequestParams p;
  p.sampling.max_new_tokens = 60;
  p.sampling.stop_at_eos = false;
  auto first = engine.submit(tok.encode("a"), p);
  auto second = engine.submit(tok.encode("b"), p);
  ASSERT_TRUE(first && second);
  EXPECT_FALSE(engine.submit(tok.encode("c"), p));  // one running + one waiting: full
  first->cancel();
  auto got = collect(*second, 1)[0];
  EXPECT_EQ(got.finish_reason, "length");
  EXPECT_EQ(got.tokens.size(), 60u);
  EXPECT_THROW(engine.submit({}, p), Error);
  EXPECT_THROW(engine.submit(std::vector<int32_t>(64, 1), p), Error);  // no room left in a slot
  // A budget too small for one slot is a usage error.
  eo.kv_memory_bytes = 100;
  EXPECT_THROW({ Engine small(model, tok, eo); }, Error);
}

}  // namespace
}  // namespace reef

namespace reef {
namespace {

// Runs prompts one after another (each finishes before the next starts) or all at once, and
// returns each one's greedy tokens.
std::vector<std::vector<int32_t>> run_greedy(Engine& engine, const ByteTokenizer& tok,
                                             const std::vector<std::string>& prompts,
                                             bool one_at_a_time, int64_t max_new = 10) {
  RequestParams p;
  p.sampling.temperature = 0;
  p.sampling.max_new_tokens = max_new;
  p.sampling.stop_at_eos = false;
  std::vector<std::vector<int32_t>> out;
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& prompt : prompts) {
    streams.push_back(engine.submit(tok.encode(prompt), p));
    if (one_at_a_time) out.push_back(collect(*streams.back(), 1)[0].tokens);
  }
  if (!one_at_a_time) {
    for (auto& s : streams) out.push_back(collect(*s, 1)[0].tokens);
  }
  return out;
}

TEST(Engine, PrefixCachingReusesHeldTokensAndKeepsOutputs) {
  torch::manual_seed(11);
  CausalLM model(tiny("llama"));
  ByteTokenizer tok;
  const std::string system = "You are a terse assistant. Answer:";  // 34 shared tokens
  const std::vector<std::string> prompts = {system + " cats", system + " dogs",
                                            system + " cats and",  // extends a finished one
                                            "unrelated", system + " owls"};
  EngineOptions off;
  off.max_slots = 2;
  off.prefill_chunk = 5;
  off.prefix_caching = false;
  EngineOptions on = off;
  on.prefix_caching = true;
  Engine plain(model, tok, off);
  const auto want = run_greedy(plain, tok, prompts, true);
  EXPECT_EQ(plain.prefix_hit_tokens(), 0);
  // One after another: each prompt finds a slot holding its start (copied into the least
  // recently released slot, so the holder keeps it; "unrelated" evicts one of the two).
  Engine cached(model, tok, on);
  EXPECT_EQ(run_greedy(cached, tok, prompts, true), want);
  int64_t query = 0;
  for (const auto& p : prompts) query += static_cast<int64_t>(p.size());
  EXPECT_EQ(cached.prefix_query_tokens(), query);
  // dogs and owls reuse the shared start and its space; "cats and" all of " cats".
  EXPECT_GE(cached.prefix_hit_tokens(), 3 * static_cast<int64_t>(system.size() + 1) + 4);
  EXPECT_LT(cached.prefix_hit_tokens(), query);
  // All at once with one request already running: later prompts copy its cached prompt into
  // their own slots. Outputs stay those of the uncached engine.
  Engine together(model, tok, on);
  auto first = together.submit(tok.encode(system + " first"), [] {
    RequestParams p;
    p.sampling.temperature = 0;
    p.sampling.max_new_tokens = 40;
    p.sampling.stop_at_eos = false;
    return p;
  }());
  while (together.prefix_query_tokens() == 0 || together.running() == 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  // Wait until the running prompt is cached (its first token is out), then submit the rest.
  TokenEvent ev;
  ASSERT_TRUE(first->next(&ev, EngineClock::now() + std::chrono::seconds(60)));
  EXPECT_EQ(run_greedy(together, tok, {prompts[0], prompts[1]}, false),
            (std::vector{want[0], want[1]}));
  EXPECT_GE(together.prefix_hit_tokens(), static_cast<int64_t>(system.size()));
  collect(*first, 1);
}

TEST(Engine, SamplesOfOnePromptPrefillItOnce) {
  torch::manual_seed(17);
  CausalLM model(tiny("llama"));
  ByteTokenizer tok;
  const auto prompt = tok.encode("a prompt of forty bytes, shared by all n");
  RequestParams p;
  p.sampling.temperature = 0.9;
  p.sampling.seed = 3;
  p.sampling.max_new_tokens = 6;
  p.sampling.stop_at_eos = false;
  p.n = 4;
  EngineOptions eo;
  eo.max_slots = 4;
  eo.prefill_chunk = 5;  // the first sample's prompt takes several steps
  std::vector<std::vector<int32_t>> want;
  {
    EngineOptions off = eo;
    off.prefix_caching = false;
    Engine plain(model, tok, off);
    auto s = plain.submit(prompt, p);
    for (const auto& c : collect(*s, 4)) want.push_back(c.tokens);
  }
  Engine engine(model, tok, eo);
  auto s = engine.submit(prompt, p);
  std::vector<std::vector<int32_t>> got;
  for (const auto& c : collect(*s, 4)) got.push_back(c.tokens);
  EXPECT_EQ(got, want);  // the same seeded samples
  // The three later samples waited for the first's prompt and copied all but its last token.
  EXPECT_EQ(engine.prefix_hit_tokens(), 3 * static_cast<int64_t>(prompt.size() - 1));
}

TEST(Engine, PromptLogprobsAndScoringOnly) {
  torch::manual_seed(13);
  CausalLM model(tiny("llama"));
  model->eval();
  ByteTokenizer tok;
  EngineOptions eo;
  eo.prefill_chunk = 4;  // the prompt spans several chunks
  Engine engine(model, tok, eo);
  const auto prompt = tok.encode("scoring a prompt");
  RequestParams p;
  p.prompt_logprobs = 3;
  p.sampling.max_new_tokens = 0;
  auto stream = engine.submit(prompt, p);
  ASSERT_TRUE(stream);
  TokenEvent ev;
  std::vector<TokenEvent> events;
  while (!stream->done()) {
    ASSERT_TRUE(stream->next(&ev, EngineClock::now() + std::chrono::seconds(60)));
    events.push_back(ev);
  }
  ASSERT_EQ(events.size(), 1u);  // scoring only: one finishing event, no token
  EXPECT_TRUE(events[0].finished);
  EXPECT_EQ(events[0].finish_reason, "length");
  EXPECT_EQ(events[0].token, -1);
  EXPECT_EQ(events[0].completion_tokens, 0);
  const auto& lps = events[0].prompt_logprobs;
  ASSERT_EQ(lps.size(), prompt.size() - 1);
  // Against the whole prompt in one plain forward.
  torch::NoGradGuard ng;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  auto logp = torch::log_softmax(model->forward(row(ids))[0], -1);  // [T, V]
  for (size_t j = 0; j < lps.size(); ++j) {
    EXPECT_EQ(lps[j].token, prompt[j + 1]);
    EXPECT_NEAR(lps[j].logprob, logp[j][prompt[j + 1]].item<double>(), 1e-5) << j;
    ASSERT_EQ(lps[j].top.size(), 3u);
    EXPECT_NEAR(lps[j].top[0].second, logp[j].max().item<double>(), 1e-5) << j;
  }
}

}  // namespace
}  // namespace reef
