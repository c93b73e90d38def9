// The HTTP side of `reef serve` (see server.h): routes, authentication, limits, streaming and
// the SIGTERM drain. Handlers run on httplib's worker threads and only talk to the engine
// through submit() and the per-request event stream; the engine thread owns the model.
#include "reef/serve/server.h"

#include <httplib.h>
#include <pthread.h>
#include <signal.h>

#include <chrono>
#include <iostream>
#include <map>
#include <mutex>
#include <random>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"
#include "reef/base/threads.h"
#include "reef/checkpoint/model_io.h"
#include "reef/checkpoint/peft_io.h"
#include "reef/serve/metrics.h"
#include "reef/serve/openai_api.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

using json = nlohmann::json;

struct ServerState {
  ServeOptions options;
  CausalLM model{nullptr};
  std::mutex adapters_mu;
  std::map<std::string, std::shared_ptr<const ServedAdapter>> adapters;  // under adapters_mu
  std::unique_ptr<Tokenizer> tokenizer;
  ChatPrompting chat;
  std::string model_name;
  int64_t created = 0;
  ServeMetrics metrics;
  std::unique_ptr<Engine> engine;
  std::atomic<bool> draining{false};
};

double seconds_between(EngineClock::time_point a, EngineClock::time_point b) {
  return std::chrono::duration<double>(b - a).count();
}

// Time to first token and inter-token latency of one request's sequences, into the metrics.
class LatencyTracker {
 public:
  LatencyTracker(ServerState& state, EngineClock::time_point arrival, int64_t n)
      : state_(state), arrival_(arrival), last_(static_cast<size_t>(n)) {}
  void observe(const TokenEvent& e) {
    if (e.token >= 0) {
      auto& last = last_.at(static_cast<size_t>(e.index));
      if (last) {
        state_.metrics.observe_inter_token(seconds_between(*last, e.time));
      } else {
        state_.metrics.observe_ttft(seconds_between(arrival_, e.time));
      }
      last = e.time;
    }
    if (e.finished) state_.metrics.add_tokens(0, e.completion_tokens);
  }

 private:
  ServerState& state_;
  EngineClock::time_point arrival_;
  std::vector<std::optional<EngineClock::time_point>> last_;
};

void send_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(dump_json(body), "application/json");
}

void check_auth(const ServerState& s, const httplib::Request& req) {
  if (s.options.api_key.empty()) return;
  const std::string header = req.get_header_value("Authorization");
  const std::string prefix = "Bearer ";
  if (header.empty()) {
    throw ApiError(401, "missing API key: send 'Authorization: Bearer <key>'",
                   "invalid_request_error", "", "invalid_api_key");
  }
  if (header.compare(0, prefix.size(), prefix) != 0 ||
      header.substr(prefix.size()) != s.options.api_key) {
    throw ApiError(401, "incorrect API key provided", "invalid_request_error", "",
                   "invalid_api_key");
  }
}

uint64_t random_seed() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// Tokenizes and checks each prompt against the context; fills max_new_tokens and the seed.
std::vector<std::vector<int32_t>> prepare(ServerState& s, CompletionRequest& r) {
  if (!r.model.empty() && r.model != s.model_name) {
    std::lock_guard<std::mutex> lk(s.adapters_mu);
    auto it = s.adapters.find(r.model);
    if (it == s.adapters.end()) {
      std::string served = s.model_name;
      for (const auto& [name, a] : s.adapters) served += "', '" + name;
      throw ApiError(
          404,
          fmt::format("the model '{}' does not exist; this server serves '{}'", r.model, served),
          "invalid_request_error", "model", "model_not_found");
    }
    r.params.adapter = it->second;
  }
  const bool several = r.prompts.size() > 1;
  const int64_t context = s.engine->slot_len();
  std::vector<std::vector<int32_t>> all;
  int64_t least_room = context;
  for (size_t p = 0; p < r.prompts.size(); ++p) {
    const std::string field = r.chat    ? "messages"
                              : several ? fmt::format("prompt[{}]", p)
                                        : std::string("prompt");
    const PromptInput& in = r.prompts[p];
    // A chat's rendered template writes its own special tokens (parsed, nothing added); a text
    // prompt is encoded as vLLM does (the tokenizer's BOS when its post-processor adds one).
    std::vector<int32_t> ids = in.ids   ? *in.ids
                               : r.chat ? encode_like_transformers(*s.tokenizer, in.text, false)
                                        : encode_prompt(*s.tokenizer, in.text);
    for (int32_t id : ids) {
      if (id >= s.tokenizer->vocab_size()) {
        throw ApiError(400,
                       fmt::format("{}: token id {} is outside the vocabulary of {}", field, id,
                                   s.tokenizer->vocab_size()),
                       "invalid_request_error", field);
      }
    }
    if (ids.empty()) throw ApiError(400, field + " is empty", "invalid_request_error", field);
    // Scoring only (max_tokens 0) may fill the context; generating needs room for a token.
    const int64_t room = context - static_cast<int64_t>(ids.size());
    if (room < (r.max_tokens == 0 ? 0 : 1)) {
      throw ApiError(400,
                     fmt::format("{} has {} tokens but the context holds {} tokens", field,
                                 ids.size(), context),
                     "invalid_request_error", field, "context_length_exceeded");
    }
    least_room = std::min(least_room, room);
    all.push_back(std::move(ids));
  }
  const int64_t max_tokens =
      r.max_tokens.value_or(r.chat ? least_room : std::min<int64_t>(16, least_room));
  if (max_tokens > least_room) {
    throw ApiError(400,
                   fmt::format("max_tokens is {} but the longest prompt leaves room for {} "
                               "in the context of {} tokens",
                               max_tokens, least_room, context),
                   "invalid_request_error", "max_tokens", "context_length_exceeded");
  }
  if (r.params.grammar && max_tokens < r.params.grammar->min_bytes()) {
    throw ApiError(400,
                   fmt::format("max_tokens is {} but the shortest document response_format "
                               "admits takes {} tokens",
                               max_tokens, r.params.grammar->min_bytes()),
                   "invalid_request_error", "max_tokens");
  }
  r.params.sampling.max_new_tokens = max_tokens;
  r.params.sampling.seed = r.seed ? *r.seed : random_seed();
  return all;
}

std::string sse(const json& j) { return "data: " + dump_json(j) + "\n\n"; }

void handle_completion(ServerState& s, const httplib::Request& req, httplib::Response& res,
                       bool chat) {
  const auto arrival = EngineClock::now();
  const std::string endpoint = chat ? "/v1/chat/completions" : "/v1/completions";
  try {
    check_auth(s, req);
    if (s.draining) throw ApiError(503, "the server is shutting down", "service_unavailable");
    CompletionRequest r = parse_completion_request(req.body, chat, s.chat);
    const std::vector<std::vector<int32_t>> ids = prepare(s, r);
    auto stream = s.engine->submit_group(ids, r.params);
    if (!stream) {
      throw ApiError(429, "the request queue is full; retry later", "rate_limit_error", "",
                     "queue_full");
    }
    auto builder = std::make_shared<ResponseBuilder>(
        r, r.params.adapter ? r.params.adapter->name : s.model_name, *s.tokenizer, ids);
    s.metrics.add_tokens(builder->usage()["prompt_tokens"].get<int64_t>(), 0);
    const int64_t sequences = static_cast<int64_t>(ids.size()) * r.params.n;
    auto tracker = std::make_shared<LatencyTracker>(s, arrival, sequences);
    const auto deadline = arrival + std::chrono::duration_cast<EngineClock::duration>(
                                        std::chrono::duration<double>(s.options.request_timeout_s));
    if (!r.stream) {
      TokenEvent ev;
      std::string error;
      while (!stream->done()) {
        if (!stream->next(&ev, deadline)) {
          stream->cancel();
          throw ApiError(504,
                         fmt::format("the request ran past the time limit of {} s",
                                     s.options.request_timeout_s),
                         "timeout");
        }
        tracker->observe(ev);
        builder->add(ev);
        if (ev.finish_reason == "error") error = ev.error;
      }
      if (!error.empty()) throw ApiError(500, "generation failed: " + error, "server_error");
      send_json(res, 200, builder->response());
      s.metrics.count_request(endpoint, 200);
      return;
    }
    const bool include_usage = r.include_usage;
    res.status = 200;
    res.set_header("Cache-Control", "no-cache");
    s.metrics.count_request(endpoint, 200);
    res.set_chunked_content_provider(
        "text/event-stream",
        [stream, builder, tracker, include_usage, deadline, &s](size_t, httplib::DataSink& sink) {
          auto write = [&](const std::string& text) {
            return sink.write(text.data(), text.size());
          };
          TokenEvent ev;
          while (!stream->done()) {
            auto wake = std::min(deadline, EngineClock::now() + std::chrono::milliseconds(200));
            if (!stream->next(&ev, wake)) {
              if (EngineClock::now() >= deadline) {
                stream->cancel();
                write(sse(error_body(fmt::format("the request ran past the time limit of {} s",
                                                 s.options.request_timeout_s),
                                     "timeout")));
                break;
              }
              if (!sink.is_writable()) {  // the client went away: free its slot now
                stream->cancel();
                return false;
              }
              continue;
            }
            tracker->observe(ev);
            for (const auto& chunk : builder->add(ev)) {
              if (!write(sse(chunk))) {
                stream->cancel();
                return false;
              }
            }
          }
          if (include_usage) write(sse(builder->usage_chunk()));
          write("data: [DONE]\n\n");
          sink.done();
          return true;
        },
        [stream](bool success) {
          if (!success) stream->cancel();
        });
  } catch (const ApiError& e) {
    send_json(res, e.status(), e.body());
    s.metrics.count_request(endpoint, e.status());
  } catch (const Error& e) {
    const int status = e.kind() == ErrorKind::kUsage ? 400 : 500;
    send_json(res, status,
              error_body(e.what(), status == 400 ? "invalid_request_error" : "server_error"));
    s.metrics.count_request(endpoint, status);
  }
}

// A request answered with one JSON object (or an OpenAI error), counted in the metrics.
// A request answered by `answer` (which fills res on success), or with an OpenAI error; counted
// in the metrics either way.
void handle_simple(ServerState& s, const httplib::Request& req, httplib::Response& res,
                   const std::string& endpoint, const std::function<void()>& answer) {
  try {
    check_auth(s, req);
    answer();
    s.metrics.count_request(endpoint, 200);
  } catch (const ApiError& e) {
    send_json(res, e.status(), e.body());
    s.metrics.count_request(endpoint, e.status());
  } catch (const Error& e) {
    const int status = e.kind() == ErrorKind::kUsage ? 400 : 500;
    send_json(res, status,
              error_body(e.what(), status == 400 ? "invalid_request_error" : "server_error"));
    s.metrics.count_request(endpoint, status);
  }
}

// A request answered with one JSON object.
void handle_json(ServerState& s, const httplib::Request& req, httplib::Response& res,
                 const std::string& endpoint, const std::function<json()>& answer) {
  handle_simple(s, req, res, endpoint, [&] { send_json(res, 200, answer()); });
}

// Loads `dir` as adapter `name` (checked against the model; a usage error names what is wrong).
void add_adapter(ServerState& s, const std::string& name, const std::string& dir) {
  if (name.empty()) usage_error("a LoRA adapter needs a name");
  if (name == s.model_name) usage_error("LoRA adapter '{}': the name is the base model's", name);
  {
    std::lock_guard<std::mutex> lk(s.adapters_mu);
    if (s.adapters.count(name)) usage_error("the LoRA adapter '{}' is already loaded", name);
  }
  auto adapter = load_served_adapter(name, dir, s.model);  // reads files: outside the lock
  std::lock_guard<std::mutex> lk(s.adapters_mu);
  if (!s.adapters.emplace(name, std::move(adapter)).second)
    usage_error("the LoRA adapter '{}' is already loaded", name);
  log_info("reef serve: LoRA adapter '{}' loaded from {}", name, dir);
}

void handle_adapter_request(ServerState& s, const httplib::Request& req, httplib::Response& res,
                            bool load) {
  const std::string endpoint = load ? "/v1/load_lora_adapter" : "/v1/unload_lora_adapter";
  handle_simple(s, req, res, endpoint, [&] {
    json body = json::parse(req.body, nullptr, false);
    if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
    auto text = [&](const char* key) {
      auto it = body.find(key);
      if (it == body.end() || !it->is_string() || it->get<std::string>().empty())
        throw ApiError(400, fmt::format("'{}' must be a non-empty string", key),
                       "invalid_request_error", key);
      return it->get<std::string>();
    };
    const std::string name = text("lora_name");
    std::string message;
    if (!s.engine->multi_lora())
      throw ApiError(400, "LoRA adapters are off: start reef serve with --enable-lora or --lora",
                     "invalid_request_error", "lora_name");
    if (load) {
      try {
        add_adapter(s, name, text("lora_path"));
      } catch (const Error& e) {
        throw ApiError(400, e.what(), "invalid_request_error", "lora_path");
      }
      message = fmt::format("Success: LoRA adapter '{}' added successfully.", name);
    } else {
      std::lock_guard<std::mutex> lk(s.adapters_mu);
      // Running requests keep their reference; new ones can no longer name it.
      if (s.adapters.erase(name) == 0)
        throw ApiError(404, fmt::format("The lora adapter '{}' cannot be found.", name),
                       "not_found_error", "lora_name");
      message = fmt::format("Success: LoRA adapter '{}' removed successfully.", name);
    }
    res.status = 200;
    res.set_content(message, "text/plain");  // vLLM answers plain text
  });
}

void add_routes(httplib::Server& svr, ServerState& s) {
  svr.Post("/v1/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, req, res, false);
  });
  svr.Post("/v1/chat/completions", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_completion(s, req, res, true);
  });
  svr.Get("/v1/models", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json(s, req, res, "/v1/models", [&] {
      json list = model_list(s.model_name, s.created);
      std::lock_guard<std::mutex> lk(s.adapters_mu);
      for (const auto& [name, a] : s.adapters) {
        list["data"].push_back({{"id", name},
                                {"object", "model"},
                                {"created", s.created},
                                {"owned_by", "reef"},
                                {"root", a->dir},
                                {"parent", s.model_name}});
      }
      return list;
    });
  });
  // vLLM's runtime adapter endpoints; they answer plain text, as vLLM does.
  svr.Post("/v1/load_lora_adapter", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_adapter_request(s, req, res, true);
  });
  svr.Post("/v1/unload_lora_adapter", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_adapter_request(s, req, res, false);
  });
  // vLLM's tokenizer endpoints (lm-eval's remote tokenizer).
  svr.Post("/tokenize", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json(s, req, res, "/tokenize", [&] {
      return tokenize_response(req.body, *s.tokenizer, s.chat, s.engine->slot_len());
    });
  });
  svr.Post("/detokenize", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json(s, req, res, "/detokenize",
                [&] { return detokenize_response(req.body, *s.tokenizer); });
  });
  svr.Get("/tokenizer_info", [&s](const httplib::Request& req, httplib::Response& res) {
    handle_json(s, req, res, "/tokenizer_info",
                [&] { return tokenizer_info(*s.tokenizer, s.chat, s.engine->slot_len()); });
  });
  svr.Get("/health", [&s](const httplib::Request&, httplib::Response& res) {
    if (s.draining) {
      send_json(res, 503, {{"status", "draining"}});
    } else {
      send_json(res, 200, {{"status", "ok"}});
    }
  });
  svr.Get("/metrics", [&s](const httplib::Request&, httplib::Response& res) {
    res.set_content(s.metrics.render(s.engine->waiting(), s.engine->running(), s.engine->slots(),
                                     s.engine->cancelled(), s.engine->prefix_query_tokens(),
                                     s.engine->prefix_hit_tokens()),
                    "text/plain; version=0.0.4");
  });
  // Statuses httplib sets itself (404 unknown path, 413 body too large, 400 unreadable
  // request) get an OpenAI error object too; handlers' own bodies are left alone.
  svr.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req,
                                                                httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
    std::string message = fmt::format("{} {}: HTTP status {}", req.method, req.path, res.status);
    if (res.status == 404) message = fmt::format("no route for {} {}", req.method, req.path);
    if (res.status == 413) message = "the request body is larger than the server's limit";
    send_json(res, res.status,
              error_body(message, res.status == 404 ? "not_found_error" : "invalid_request_error"));
    return httplib::Server::HandlerResponse::Handled;
  }));
  svr.set_exception_handler(
      [](const httplib::Request&, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "internal error";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_json(res, 500, error_body(what, "server_error"));
      });
}

}  // namespace

int run_server(const ServeOptions& options) {
  // SIGTERM/SIGINT are taken by one thread (sigwait); every thread started from here on
  // inherits the mask, so none of them is interrupted.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  ::signal(SIGPIPE, SIG_IGN);  // a client that hangs up is a failed write, not the end of us

  auto state = std::make_unique<ServerState>();
  ServerState& s = *state;
  s.options = options;
  if (options.request_timeout_s <= 0)
    usage_error("--request-timeout must be > 0, got {}", options.request_timeout_s);
  if (options.port < 0 || options.port > 65535)
    usage_error("--port must be 0..65535, got {}", options.port);
  // The model's own chat template, else the named built-in (or a .jinja file).
  s.chat.chat_template = std::make_shared<const ChatTemplate>(
      ChatTemplate::load(options.model_dir, options.chat_template));
  s.chat.end_of_turn = s.chat.chat_template->end_of_turn();
  const int threads = thread_count(options.threads);
  torch::set_num_threads(threads);
  CausalLM model = load_model_folder(options.model_dir, torch::Device(options.device));
  require_language_model(model, options.model_dir, "reef serve");
  s.model = model;
  s.tokenizer = load_tokenizer(options.model_dir);
  s.model_name = options.model_name;
  if (s.model_name.empty()) {
    std::string dir = options.model_dir;
    while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
    s.model_name = dir.substr(dir.find_last_of('/') + 1);
  }
  s.created = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  for (const auto& spec : options.loras) {
    const auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      usage_error("--lora {}: expected NAME=DIR", spec);
    add_adapter(s, spec.substr(0, eq), spec.substr(eq + 1));
  }
  EngineOptions engine_options = options.engine;
  // Per-row adapter hooks only when adapters may be served (as vLLM's --enable-lora).
  engine_options.multi_lora = options.enable_lora || !options.loras.empty();
  s.engine =
      std::make_unique<Engine>(model, *s.tokenizer, engine_options, [&s](const EngineStep& step) {
        if (step.decode_rows > 0) s.metrics.observe_step(step.decode_rows);
      });

  httplib::Server svr;
  const int64_t http_threads = options.http_threads > 0
                                   ? options.http_threads
                                   : s.engine->slots() + options.engine.max_waiting + 8;
  svr.new_task_queue = [http_threads] {
    return new httplib::ThreadPool(static_cast<size_t>(http_threads));
  };
  svr.set_payload_max_length(options.max_body_bytes);
  svr.set_read_timeout(30, 0);
  svr.set_write_timeout(30, 0);
  svr.set_keep_alive_timeout(2);
  // Debian's compiled cpp-httplib listens with a backlog of 5: a burst of clients overflows the
  // accept queue and some connections are dropped unanswered. Keep the listening socket's handle
  // and raise its backlog after binding (listen() again on Linux only changes the backlog).
  socket_t listen_fd = INVALID_SOCKET;
  svr.set_socket_options([&listen_fd](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd = sock;
  });
  add_routes(svr, s);
  int port = options.port;
  if (port == 0) {
    port = svr.bind_to_any_port(options.host);
  } else if (!svr.bind_to_port(options.host, port)) {
    port = -1;
  }
  if (port <= 0)
    fail("cannot listen on {}:{} (address in use or not available)", options.host, options.port);
  if (listen_fd != INVALID_SOCKET) ::listen(listen_fd, SOMAXCONN);

  std::atomic<bool> listening_done{false};
  std::thread signal_thread([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (listening_done) return;
    log_info("reef serve: signal {} received: draining in-flight requests", sig);
    s.draining = true;
    while (!listening_done) {  // stop() is a no-op until listen_after_bind has started
      svr.stop();
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  log_info(
      "reef serve: model {} ({} KV slots of {} tokens, prefill chunk {}, prefix caching {}, {} "
      "torch threads)",
      s.model_name, s.engine->slots(), s.engine->slot_len(), options.engine.prefill_chunk,
      options.engine.prefix_caching ? "on" : "off", threads);
  std::cout << "reef serve: listening on http://" << options.host << ":" << port << std::endl;
  svr.listen_after_bind();  // returns once stopped and every in-flight request has finished
  listening_done = true;
  if (!s.draining) pthread_kill(signal_thread.native_handle(), SIGTERM);
  signal_thread.join();
  s.engine->shutdown();
  log_info("reef serve: drained, exiting");
  return 0;
}

}  // namespace reef
