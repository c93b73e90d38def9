// `reef serve` over real HTTP on loopback: completions and chat (whole and streamed as SSE)
// against transformers' greedy continuation of the tiny model folder that model_cli_reference.py
// makes, batched prompts and echo scoring, prefix-cache hits, LoRA adapters by model name (at
// start and loaded / unloaded at run time), vLLM's tokenizer endpoints, OpenAI
// error objects for bad requests (400), keys (401), unknown models and paths (404) and big bodies
// (413), a full queue (429), a client that disconnects mid-stream freeing its slot, the Prometheus
// metrics, 64 concurrent clients with every response well-formed, and the SIGTERM drain finishing
// an in-flight stream before exiting 0.
#include <gtest/gtest.h>
#include <httplib.h>

#include <atomic>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>
#include <thread>

#include "reef/base/files.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/models/lora.h"
#include "reef/tokenizer/tokenizer.h"
#include "testing/serve_process.h"
#include "testing/testing.h"

namespace reef {
namespace {

using json = nlohmann::json;
using testing::ServeProcess;

const std::string kKey = "sk-reef-test";

const std::string& model_dir() {
  static const std::string dir =
      testing::cached_python_output(
          testing::source_dir() + "/tests/integration/model_cli_reference.py", {"make"}) +
      "/llama";
  return dir;
}

// transformers' greedy continuation of the reference prompt (16 tokens, cut at eos), decoded.
std::string expected_greedy_text() {
  auto expected = json::parse(read_file(model_dir() + "/expected.json"));
  auto ids = expected["greedy_ids"].get<std::vector<int32_t>>();
  auto tok = load_tokenizer(model_dir());
  const size_t prompt_len = tok->encode(expected["prompt"].get<std::string>()).size();
  std::vector<int32_t> out;
  for (size_t i = prompt_len; i < ids.size() && ids[i] != expected["eos"].get<int32_t>(); ++i) {
    out.push_back(ids[i]);
  }
  // As the server sends it: JSON with invalid UTF-8 (random weights emit stray bytes) replaced.
  return json::parse(json(tok->decode(out)).dump(-1, ' ', false, json::error_handler_t::replace))
      .get<std::string>();
}

// The ASCII characters of `s`: stream deltas split stray bytes differently than the whole text,
// so streamed text is compared on these.
std::string ascii(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (static_cast<unsigned char>(c) < 0x80) out += c;
  }
  return out;
}

httplib::Headers auth() { return {{"Authorization", "Bearer " + kKey}}; }

struct Reply {
  int status = 0;
  json body;
  std::string raw;
};

Reply post(const ServeProcess& server, const std::string& path, const std::string& body,
           const httplib::Headers& headers = auth()) {
  httplib::Client cli(server.host(), server.port());
  cli.set_read_timeout(120, 0);
  auto res = cli.Post(path.c_str(), headers, body, "application/json");
  Reply r;
  if (!res) {
    ADD_FAILURE() << "no HTTP response for " << path << ": " << httplib::to_string(res.error());
    return r;
  }
  r.status = res->status;
  r.raw = res->body;
  r.body = json::parse(res->body, nullptr, false);
  return r;
}

// The JSON events of an SSE body; checks the framing and the final "data: [DONE]".
std::vector<json> sse_events(const std::string& body) {
  std::vector<json> events;
  std::istringstream in(body);
  std::string line;
  bool done = false;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    EXPECT_EQ(line.rfind("data: ", 0), 0u) << line;
    EXPECT_FALSE(done) << "an event after [DONE]";
    std::string data = line.substr(6);
    if (data == "[DONE]") {
      done = true;
      continue;
    }
    json j = json::parse(data, nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << data;
    events.push_back(j);
  }
  EXPECT_TRUE(done) << "no data: [DONE] in\n" << body;
  return events;
}

// Concatenated text of a stream; every chunk well-formed and exactly one finish_reason.
std::string stream_text(const std::vector<json>& events, bool chat) {
  std::string text;
  int finishes = 0;
  for (const auto& e : events) {
    if (e["choices"].empty()) continue;  // usage chunk
    EXPECT_EQ(e["object"], chat ? "chat.completion.chunk" : "text_completion");
    const auto& c = e["choices"][0];
    if (chat) {
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    } else {
      text += c["text"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) ++finishes;
  }
  EXPECT_EQ(finishes, 1);
  return text;
}

long metric(const std::string& text, const std::string& name) {
  std::smatch m;
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9.e+-]+)\n"))) return -1;
  return static_cast<long>(std::stod(m[1]));
}

std::string metrics_text(const ServeProcess& server) {
  httplib::Client cli(server.host(), server.port());
  auto res = cli.Get("/metrics");
  return res && res->status == 200 ? "\n" + res->body : "";
}

class Serve : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ =
        new ServeProcess(model_dir(), {"--api-key", kKey, "--max-batch", "8", "--max-queue", "128",
                                       "--prefill-chunk", "4", "--max-body-bytes", "65536"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->stop(), 0) << server_->log();
    delete server_;
  }
  static ServeProcess* server_;
};
ServeProcess* Serve::server_ = nullptr;

TEST_F(Serve, CompletionsMatchTransformersGreedyWholeAndStreamed) {
  const std::string want = expected_greedy_text();
  json req = {{"prompt", "the cat sat on"}, {"max_tokens", 16}, {"temperature", 0}};
  auto r = post(*server_, "/v1/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "text_completion");
  EXPECT_EQ(r.body["choices"][0]["text"], want);
  EXPECT_EQ(r.body["usage"]["total_tokens"].get<int>(),
            r.body["usage"]["prompt_tokens"].get<int>() +
                r.body["usage"]["completion_tokens"].get<int>());
  req["stream"] = true;
  auto s = post(*server_, "/v1/completions", req.dump());
  ASSERT_EQ(s.status, 200);
  EXPECT_EQ(ascii(stream_text(sse_events(s.raw), false)), ascii(want));
  // n = 3 greedy samples are all the same continuation.
  req["stream"] = false;
  req["n"] = 3;
  auto n3 = post(*server_, "/v1/completions", req.dump());
  ASSERT_EQ(n3.status, 200) << n3.raw;
  ASSERT_EQ(n3.body["choices"].size(), 3u);
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(n3.body["choices"][i]["index"], i);
    EXPECT_EQ(n3.body["choices"][i]["text"], want);
  }
}

TEST_F(Serve, ChatWholeAndStreamedAgreeAndListModels) {
  json req = {{"messages", {{{"role", "user"}, {"content", "the cat"}}}},
              {"max_tokens", 8},
              {"temperature", 0},
              {"model", "llama"}};
  auto r = post(*server_, "/v1/chat/completions", req.dump());
  ASSERT_EQ(r.status, 200) << r.raw;
  EXPECT_EQ(r.body["object"], "chat.completion");
  EXPECT_EQ(r.body["choices"][0]["message"]["role"], "assistant");
  const std::string content = r.body["choices"][0]["message"]["content"];
  req["stream"] = true;
  req["stream_options"] = {{"include_usage", true}};
  auto s = post(*server_, "/v1/chat/completions", req.dump());
  ASSERT_EQ(s.status, 200);
  auto events = sse_events(s.raw);
  ASSERT_GE(events.size(), 2u);
  EXPECT_EQ(events[0]["choices"][0]["delta"]["role"], "assistant");
  EXPECT_EQ(ascii(stream_text(events, true)), ascii(content));
  EXPECT_EQ(events.back()["usage"], r.body["usage"]);
  httplib::Client cli(server_->host(), server_->port());
  auto models = cli.Get("/v1/models", auth());
  ASSERT_TRUE(models);
  auto list = json::parse(models->body);
  EXPECT_EQ(list["data"][0]["id"], "llama");
}

// OpenAI's batched prompts (strings, token lists) with choices indexed prompt by prompt, and
// scoring: echo + logprobs with max_tokens 0 returns the prompt's log-probs, the ones the
// model gave those tokens when it generated them.
TEST_F(Serve, BatchedPromptsAndEchoScoring) {
  const std::string c = "/v1/completions";
  json one = {{"max_tokens", 4}, {"temperature", 0}, {"logprobs", 2}};
  std::vector<std::string> prompts = {"the cat sat on", "a dog ran"};
  std::vector<json> alone;
  for (const auto& p : prompts) {
    one["prompt"] = p;
    auto r = post(*server_, c, one.dump());
    ASSERT_EQ(r.status, 200) << r.raw;
    alone.push_back(r.body["choices"][0]);
  }
  json batch = one;
  batch["prompt"] = prompts;
  batch["n"] = 2;
  auto b = post(*server_, c, batch.dump());
  ASSERT_EQ(b.status, 200) << b.raw;
  ASSERT_EQ(b.body["choices"].size(), 4u);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(b.body["choices"][i]["index"], i);
    EXPECT_EQ(b.body["choices"][i]["text"], alone[i / 2]["text"]) << i;
  }
  // The same prompts as token lists, tokenized by the server's /tokenize.
  json id_lists = json::array();
  for (const auto& p : prompts) {
    auto t = post(*server_, "/tokenize", json{{"prompt", p}}.dump());
    ASSERT_EQ(t.status, 200) << t.raw;
    EXPECT_EQ(t.body["count"], t.body["tokens"].size());
    auto d = post(*server_, "/detokenize", json{{"tokens", t.body["tokens"]}}.dump());
    EXPECT_EQ(d.body["prompt"], p);
    id_lists.push_back(t.body["tokens"]);
  }
  batch["prompt"] = id_lists;
  batch["n"] = 1;
  auto ids = post(*server_, c, batch.dump());
  ASSERT_EQ(ids.status, 200) << ids.raw;
  EXPECT_EQ(ids.body["usage"]["prompt_tokens"], id_lists[0].size() + id_lists[1].size());
  for (size_t i = 0; i < 2; ++i) EXPECT_EQ(ids.body["choices"][i]["text"], alone[i]["text"]);

  // Score prompt + transformers' greedy continuation (the server's own, as the test above shows):
  // the continuation's log-probs are the ones generation reported, and each is its position's
  // likeliest.
  auto expected = json::parse(read_file(model_dir() + "/expected.json"));
  auto greedy = expected["greedy_ids"].get<std::vector<int32_t>>();
  auto tok = load_tokenizer(model_dir());
  const size_t prompt_len = tok->encode(expected["prompt"].get<std::string>()).size();
  size_t end = prompt_len;
  while (end < greedy.size() && end < prompt_len + 4 && greedy[end] != expected["eos"].get<int>())
    ++end;
  ASSERT_GT(end, prompt_len);
  json gen_req = {{"prompt", std::vector<int32_t>(greedy.begin(), greedy.begin() + prompt_len)},
                  {"max_tokens", end - prompt_len},
                  {"temperature", 0},
                  {"logprobs", 1}};
  auto g = post(*server_, c, gen_req.dump());
  ASSERT_EQ(g.status, 200) << g.raw;
  const json& gen = g.body["choices"][0]["logprobs"];
  json scored_ids = std::vector<int32_t>(greedy.begin(), greedy.begin() + end);
  json score = {{"prompt", scored_ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}};
  auto sc = post(*server_, c, score.dump());
  ASSERT_EQ(sc.status, 200) << sc.raw;
  const json& choice = sc.body["choices"][0];
  EXPECT_EQ(choice["finish_reason"], "length");
  EXPECT_EQ(sc.body["usage"]["completion_tokens"], 0);
  const json& lp = choice["logprobs"];
  ASSERT_EQ(lp["token_logprobs"].size(), scored_ids.size());
  EXPECT_TRUE(lp["token_logprobs"][0].is_null());
  EXPECT_TRUE(lp["top_logprobs"][0].is_null());
  EXPECT_EQ(lp["text_offset"][0], 0);
  const size_t n_gen = end - prompt_len;
  ASSERT_EQ(gen["token_logprobs"].size(), n_gen);
  for (size_t j = 0; j < n_gen; ++j) {
    const size_t at = scored_ids.size() - n_gen + j;
    EXPECT_NEAR(lp["token_logprobs"][at].get<double>(), gen["token_logprobs"][j].get<double>(),
                1e-4)
        << "token " << at;
    double best = -1e9;
    for (const auto& [text, v] : lp["top_logprobs"][at].items())
      best = std::max(best, v.get<double>());
    EXPECT_EQ(best, lp["token_logprobs"][at].get<double>()) << "token " << at;
  }
  // Echo without logprobs: the text leads with the prompt, whole and streamed.
  json echo = {{"prompt", prompts[0]}, {"max_tokens", 3}, {"temperature", 0}, {"echo", true}};
  auto e = post(*server_, c, echo.dump());
  ASSERT_EQ(e.status, 200) << e.raw;
  EXPECT_EQ(e.body["choices"][0]["text"].get<std::string>().rfind(prompts[0], 0), 0u);
  EXPECT_TRUE(e.body["choices"][0]["logprobs"].is_null());
  echo["stream"] = true;
  auto es = post(*server_, c, echo.dump());
  ASSERT_EQ(es.status, 200);
  auto events = sse_events(es.raw);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events[0]["choices"][0]["text"], prompts[0]);
}

// Prefix caching: a prompt that repeats an earlier one's start reads it from the cache (the hit
// counter grows by at least that start's tokens) and a repeated prompt answers as it did first.
TEST_F(Serve, RepeatedPromptStartHitsThePrefixCache) {
  const std::string start = "the dog ran far away home and";
  json req = {{"prompt", start + " the cat"}, {"max_tokens", 6}, {"temperature", 0}};
  auto first = post(*server_, "/v1/completions", req.dump());
  ASSERT_EQ(first.status, 200) << first.raw;
  const long before = metric(metrics_text(*server_), "reef_prefix_cache_hits_total");
  ASSERT_GE(before, 0) << metrics_text(*server_);
  auto again = post(*server_, "/v1/completions", req.dump());
  ASSERT_EQ(again.status, 200) << again.raw;
  EXPECT_EQ(again.body["choices"][0]["text"], first.body["choices"][0]["text"]);
  req["prompt"] = start + " a mat";
  ASSERT_EQ(post(*server_, "/v1/completions", req.dump()).status, 200);
  const long after = metric(metrics_text(*server_), "reef_prefix_cache_hits_total");
  auto tokens = post(*server_, "/tokenize", json{{"prompt", start}}.dump());
  EXPECT_GE(after - before, 2L * tokens.body["count"].get<int>()) << metrics_text(*server_);
}

void expect_error(const Reply& r, int status, const std::string& param,
                  const std::string& code = "") {
  EXPECT_EQ(r.status, status) << r.raw;
  ASSERT_TRUE(r.body.contains("error")) << r.raw;
  EXPECT_TRUE(r.body["error"]["message"].is_string()) << r.raw;
  EXPECT_TRUE(r.body["error"]["type"].is_string()) << r.raw;
  if (!param.empty()) EXPECT_EQ(r.body["error"]["param"], param) << r.raw;
  if (!code.empty()) EXPECT_EQ(r.body["error"]["code"], code) << r.raw;
}

TEST_F(Serve, BadRequestsGetOpenAIErrors) {
  const std::string c = "/v1/completions";
  expect_error(post(*server_, c, "{\"prompt\": \"a\","), 400, "");
  expect_error(post(*server_, c, "[1, 2]"), 400, "");
  expect_error(post(*server_, c, R"({"max_tokens": 4})"), 400, "prompt");
  expect_error(post(*server_, c, R"({"prompt": "a", "max_tokens": "4"})"), 400, "max_tokens");
  expect_error(post(*server_, c, R"({"prompt": "a", "temperature": "hot"})"), 400, "temperature");
  expect_error(post(*server_, c, R"({"prompt": "a", "top_p": 0})"), 400, "top_p");
  expect_error(post(*server_, c, R"({"prompt": "a", "n": 99})"), 400, "n");
  expect_error(post(*server_, c, R"({"prompt": "a", "stop": [1]})"), 400, "stop");
  expect_error(post(*server_, c, R"({"prompt": "a", "stream": "yes"})"), 400, "stream");
  expect_error(post(*server_, "/v1/chat/completions", R"({"messages": "hi"})"), 400, "messages");
  expect_error(post(*server_, "/v1/chat/completions", R"({"messages": [{"content": "hi"}]})"), 400,
               "messages[0].role");
  json long_prompt = {{"prompt", std::string(400, 'x')}};
  expect_error(post(*server_, c, long_prompt.dump()), 400, "prompt", "context_length_exceeded");
  expect_error(post(*server_, c, R"({"prompt": "a", "max_tokens": 1000})"), 400, "max_tokens",
               "context_length_exceeded");
  expect_error(post(*server_, c, R"({"prompt": "a", "max_tokens": 0})"), 400, "max_tokens");
  expect_error(post(*server_, c, R"({"prompt": "a", "response_format": {"type": "yaml"}})"), 400,
               "response_format");
  expect_error(post(*server_, c, R"({"prompt": "a", "response_format": {"type": "json_schema"}})"),
               400, "response_format");
  expect_error(post(*server_, c,
                    R"({"prompt": "a", "response_format": {"type": "json_schema", "json_schema":
                        {"name": "x", "schema": {"type": "string", "format": "date", "minimum": 3}}}})"),
               400, "response_format");
  expect_error(post(*server_, c,
                    R"({"prompt": "a", "max_tokens": 5, "response_format": {"type": "json_schema",
                        "json_schema": {"name": "x", "schema": {"type": "object", "properties":
                        {"name": {"type": "string"}}, "required": ["name"]}}}})"),
               400, "max_tokens");
  expect_error(post(*server_, c, R"({"prompt": ["a", []]})"), 400, "prompt[1]");
  expect_error(post(*server_, c, R"({"prompt": [1, "a"]})"), 400, "prompt");
  expect_error(post(*server_, c, R"({"prompt": ["a", [99999]]})"), 400, "prompt[1]");
  expect_error(post(*server_, "/tokenize", R"({"add_special_tokens": true})"), 400, "");
  expect_error(post(*server_, "/tokenize", R"({"prompt": 3})"), 400, "prompt");
  expect_error(post(*server_, "/detokenize", R"({"tokens": [99999]})"), 400, "tokens");
  expect_error(post(*server_, "/detokenize", R"({"tokens": "ab"})"), 400, "tokens");
  expect_error(post(*server_, "/v1/load_lora_adapter", R"({"lora_name": "a", "lora_path": "/x"})"),
               400, "lora_name");  // no --enable-lora
  expect_error(post(*server_, c, R"({"prompt": "a", "model": "gpt-9"})"), 404, "model",
               "model_not_found");
  expect_error(post(*server_, c, R"({"prompt": "a"})", {}), 401, "", "invalid_api_key");
  expect_error(post(*server_, c, R"({"prompt": "a"})", {{"Authorization", "Bearer nope"}}), 401, "",
               "invalid_api_key");
  json big = {{"prompt", std::string(70000, 'x')}};
  expect_error(post(*server_, c, big.dump()), 413, "");
  httplib::Client cli(server_->host(), server_->port());
  auto missing = cli.Get("/v2/nothing");
  ASSERT_TRUE(missing);
  EXPECT_EQ(missing->status, 404);
  EXPECT_TRUE(json::parse(missing->body).contains("error"));
  auto health = cli.Get("/health");
  ASSERT_TRUE(health);
  EXPECT_EQ(health->status, 200);
}

TEST_F(Serve, SixtyFourConcurrentClientsAllWellFormed) {
  const std::string want = expected_greedy_text();
  const std::string metrics_before = metrics_text(*server_);
  std::atomic<int> ok{0};
  std::vector<std::string> failures(64);
  std::vector<std::thread> clients;
  for (int i = 0; i < 64; ++i) {
    clients.emplace_back([&, i] {
      const bool chat = i % 4 == 3, stream = i % 2 == 1;
      json req = {{"max_tokens", 6}, {"temperature", i % 3 == 0 ? 0.0 : 0.9}, {"stream", stream}};
      if (chat) {
        req["messages"] = {{{"role", "user"}, {"content", "hi"}}};
      } else {
        req["prompt"] = "the cat sat on";
      }
      auto r = post(*server_, chat ? "/v1/chat/completions" : "/v1/completions", req.dump());
      if (r.status != 200) {
        failures[i] = "status " + std::to_string(r.status) + ": " + r.raw;
        return;
      }
      std::string text;
      if (stream) {
        text = stream_text(sse_events(r.raw), chat);
      } else {
        if (r.body.is_discarded() || r.body["choices"].size() != 1 ||
            r.body["usage"]["completion_tokens"].get<int>() > 6) {
          failures[i] = "malformed: " + r.raw;
          return;
        }
        text = chat ? r.body["choices"][0]["message"]["content"].get<std::string>()
                    : r.body["choices"][0]["text"].get<std::string>();
      }
      // Greedy completions in a batch of strangers still give the single-request text.
      if (!chat && i % 3 == 0 && ascii(want).compare(0, ascii(text).size(), ascii(text)) != 0) {
        failures[i] = "greedy text '" + text + "' is not a prefix of '" + want + "'";
        return;
      }
      ++ok;
    });
  }
  for (auto& t : clients) t.join();
  for (int i = 0; i < 64; ++i) EXPECT_EQ(failures[i], "") << "client " << i;
  EXPECT_EQ(ok.load(), 64);
  const std::string m = metrics_text(*server_);
  // Continuous batching happened: some decode step ran several sequences at once.
  EXPECT_GT(metric(m, "reef_batch_size_sum"), metric(m, "reef_batch_size_count"));
  // (A sequence that samples eos at once has no first token, so not all 64 count.)
  EXPECT_GT(metric(m, "reef_time_to_first_token_seconds_count"),
            metric(metrics_before, "reef_time_to_first_token_seconds_count"));
  EXPECT_GT(metric(m, "reef_inter_token_latency_seconds_count"), 0);
  EXPECT_EQ(metric(m, "reef_queue_depth"), 0);
  EXPECT_NE(m.find("reef_requests_total{endpoint=\"/v1/completions\",status=\"200\"}"),
            std::string::npos);
  EXPECT_NE(m.find("reef_inter_token_latency_seconds_bucket{le=\"+Inf\"}"), std::string::npos);
}

// Streams a completion, calling on_chunk with each received piece; stops reading (closing
// the connection) when it returns false.
httplib::Result stream_post(const ServeProcess& server, const json& body,
                            std::function<bool(const std::string&)> on_chunk) {
  httplib::Client cli(server.host(), server.port());
  cli.set_read_timeout(120, 0);
  httplib::Request req;
  req.method = "POST";
  req.path = "/v1/completions";
  req.headers = auth();
  req.set_header("Content-Type", "application/json");
  req.body = body.dump();
  req.content_receiver = [&](const char* data, size_t n, uint64_t, uint64_t) {
    return on_chunk(std::string(data, n));
  };
  return cli.send(req);
}

TEST(ServeSmall, FullQueueIs429DisconnectFreesTheSlotAndSigtermDrains) {
  ServeProcess server(model_dir(), {"--api-key", kKey, "--max-batch", "1", "--max-queue", "3"});
  // Four long sequences fill the one slot and the three queue places.
  json longest = {{"prompt", "the"}, {"max_tokens", 60}, {"n", 4}, {"stream", true}};
  int refused = 0;
  stream_post(server, longest, [&](const std::string&) {
    auto r = post(server, "/v1/completions", R"({"prompt": "a", "max_tokens": 2})");
    expect_error(r, 429, "", "queue_full");
    refused = r.status;
    return false;  // and hang up after the first chunk
  });
  EXPECT_EQ(refused, 429);
  // The hung-up request's sequences leave the slot and the queue.
  std::string m;
  for (int i = 0; i < 400; ++i) {
    m = metrics_text(server);
    if (metric(m, "reef_running_sequences") == 0 && metric(m, "reef_queue_depth") == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(metric(m, "reef_running_sequences"), 0) << m;
  EXPECT_EQ(metric(m, "reef_queue_depth"), 0) << m;
  EXPECT_GE(metric(m, "reef_cancelled_sequences_total"), 1) << m;
  EXPECT_EQ(post(server, "/v1/completions", R"({"prompt": "a", "max_tokens": 2})").status, 200);
  // SIGTERM during a stream: the stream still ends normally, then the server exits 0.
  std::string body;
  bool signalled = false;
  // A fixed seed: with a random one the tiny model sometimes samples its end token early.
  auto res =
      stream_post(server, {{"prompt", "the"}, {"max_tokens", 50}, {"stream", true}, {"seed", 7}},
                  [&](const std::string& chunk) {
                    body += chunk;
                    if (!signalled) ::kill(server.pid(), SIGTERM);
                    signalled = true;
                    return true;
                  });
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  auto events = sse_events(body);
  ASSERT_FALSE(events.empty());
  EXPECT_EQ(events.back()["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(server.stop(), 0) << server.log();
  EXPECT_NE(server.log().find("drained"), std::string::npos);
}

}  // namespace
}  // namespace reef

namespace reef {
namespace {

// A PEFT adapter for the test model with random non-zero branches, written by Reef's own
// save_adapter (the peft round trip is peft_test.cpp's; the merged-model equality is
// multi_lora_test.cpp's).
std::string make_adapter(const std::string& dir, uint64_t seed) {
  CausalLM model = load_model_folder(model_dir(), torch::kCPU);
  LoraConfig cfg;
  cfg.layer.r = 4;
  cfg.layer.alpha = 16;
  cfg.layer.init_weights = false;
  cfg.target_modules = {"q_proj", "v_proj", "down_proj"};
  torch::manual_seed(seed);
  apply_lora(model, cfg);
  {
    torch::NoGradGuard ng;
    for (auto& [name, p] : lora_named_parameters(model)) p.normal_(0, 0.5);
  }
  make_dirs(dir);
  save_adapter(dir, model, cfg);
  return dir;
}

TEST(ServeLora, AdaptersByModelNameAndLoadUnloadAtRunTime) {
  testing::ScratchDir scratch;
  const std::string a1 = make_adapter(scratch / "a1", 1), a2 = make_adapter(scratch / "a2", 2);
  ServeProcess server(model_dir(), {"--lora", "one=" + a1, "--max-batch", "4"});
  auto complete = [&](const std::string& model) {
    json req = {{"prompt", "the cat sat on"},
                {"max_tokens", 10},
                {"temperature", 0},
                {"ignore_eos", true},
                {"model", model}};
    return post(server, "/v1/completions", req.dump(), {});
  };
  auto base = complete("llama"), one = complete("one");
  ASSERT_EQ(base.status, 200) << base.raw;
  ASSERT_EQ(one.status, 200) << one.raw;
  EXPECT_NE(one.body["choices"][0]["text"], base.body["choices"][0]["text"]);
  EXPECT_EQ(one.body["model"], "one");
  // /v1/models lists the adapter with its parent.
  httplib::Client cli(server.host(), server.port());
  auto models = json::parse(cli.Get("/v1/models")->body);
  ASSERT_EQ(models["data"].size(), 2u) << models;
  EXPECT_EQ(models["data"][1]["id"], "one");
  EXPECT_EQ(models["data"][1]["parent"], "llama");
  // Load the second adapter at run time; the same folder under another name answers alike.
  auto load = [&](const std::string& name, const std::string& path) {
    return post(server, "/v1/load_lora_adapter",
                json{{"lora_name", name}, {"lora_path", path}}.dump(), {});
  };
  auto loaded = load("two", a2);
  ASSERT_EQ(loaded.status, 200) << loaded.raw;
  EXPECT_NE(loaded.raw.find("two"), std::string::npos);
  ASSERT_EQ(load("again", a1).status, 200);
  EXPECT_EQ(complete("again").body["choices"][0]["text"], one.body["choices"][0]["text"]);
  auto two = complete("two");
  ASSERT_EQ(two.status, 200) << two.raw;
  EXPECT_NE(two.body["choices"][0]["text"], one.body["choices"][0]["text"]);
  // Concurrent requests for the base and both adapters each get their own output.
  std::vector<std::thread> threads;
  std::vector<std::string> texts(6);
  for (int i = 0; i < 6; ++i) {
    threads.emplace_back([&, i] {
      texts[i] = complete(i % 3 == 0   ? "llama"
                          : i % 3 == 1 ? "one"
                                       : "two")
                     .body["choices"][0]["text"]
                     .get<std::string>();
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < 6; ++i) {
    const json& want = i % 3 == 0 ? base.body : i % 3 == 1 ? one.body : two.body;
    EXPECT_EQ(texts[i], want["choices"][0]["text"]) << i;
  }
  // Errors: a duplicate name, a folder that is no adapter, unloading twice.
  expect_error(load("two", a2), 400, "lora_path");
  expect_error(load("three", scratch / "nothing"), 400, "lora_path");
  expect_error(post(server, "/v1/load_lora_adapter", R"({"lora_name": "x"})", {}), 400,
               "lora_path");
  auto unload = [&](const std::string& name) {
    return post(server, "/v1/unload_lora_adapter", json{{"lora_name", name}}.dump(), {});
  };
  EXPECT_EQ(unload("two").status, 200);
  expect_error(unload("two"), 404, "lora_name");
  expect_error(complete("two"), 404, "model", "model_not_found");
  EXPECT_EQ(server.stop(), 0) << server.log();
}

}  // namespace
}  // namespace reef
