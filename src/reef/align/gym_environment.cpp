// Implementation of align/gym_environment.h with cpp-httplib's client (the library the server
// uses). cpp-httplib keeps no cookies, so the session cookie is carried by hand.
#include "reef/align/gym_environment.h"

#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <ctime>
#include <limits>
#include <map>
#include <optional>
#include <random>
#include <thread>

#include "reef/base/error.h"
#include "reef/base/log.h"
#include "reef/base/strings.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;
constexpr size_t kMaxThreads = 8;  // rollouts scored at once

std::string random_hex(size_t n) {
  thread_local std::mt19937_64 rng(std::random_device{}());
  std::string out;
  while (out.size() < n) out += fmt::format("{:016x}", rng());
  return out.substr(0, n);
}

// What the model was asked: the prompt's messages, or the prompt text as one user message.
ojson input_messages(const Rollout& r) {
  ojson input = ojson::array();
  if (r.messages.is_array() && !r.messages.empty()) {
    for (const auto& m : r.messages) {
      ojson one = ojson::object();
      one["role"] = m.value("role", "user");
      one["content"] = m.contains("content") ? m["content"] : ojson("");
      one["type"] = "message";
      input.push_back(std::move(one));
    }
  } else {
    input.push_back({{"role", "user"}, {"content", r.prompt}, {"type", "message"}});
  }
  return input;
}

// The row's metadata fields with responses_create_params set to what the model saw.
ojson task_fields(const Rollout& r) {
  ojson body = r.metadata.is_object() ? r.metadata : ojson::object();
  ojson params =
      body.contains("responses_create_params") && body["responses_create_params"].is_object()
          ? body["responses_create_params"]
          : ojson::object();
  params["input"] = input_messages(r);
  body["responses_create_params"] = std::move(params);
  return body;
}

// The completion as an OpenAI Responses-API response object (the fields NeMoGymResponse needs).
ojson response_object(const Rollout& r) {
  ojson text = {{"type", "output_text"}, {"text", r.completion}, {"annotations", ojson::array()}};
  ojson message = {{"id", "msg_" + random_hex(24)},
                   {"type", "message"},
                   {"role", "assistant"},
                   {"status", r.truncated ? "incomplete" : "completed"},
                   {"content", ojson::array({text})}};
  ojson resp = {{"id", "resp_" + random_hex(24)},
                {"created_at", static_cast<int64_t>(std::time(nullptr))},
                {"model", "reef"},
                {"object", "response"},
                {"output", ojson::array({message})},
                {"parallel_tool_calls", false},
                {"tool_choice", "auto"},
                {"tools", ojson::array()},
                {"status", r.truncated ? "incomplete" : "completed"}};
  if (r.truncated) resp["incomplete_details"] = {{"reason", "max_output_tokens"}};
  return resp;
}

// One POST with retries; the session's cookies are sent and updated from Set-Cookie. nullopt
// (and *error) when every try failed.
std::optional<ojson> post(httplib::Client& client, const std::string& path, const ojson& body,
                          int64_t retries, std::map<std::string, std::string>& cookies,
                          std::string* error) {
  const std::string payload = body.dump();
  for (int64_t attempt = 0; attempt <= retries; ++attempt) {
    if (attempt > 0)  // a short backoff: 0.1 s, 0.2 s, 0.4 s ... at most 2 s
      std::this_thread::sleep_for(std::chrono::milliseconds(
          std::min<int64_t>(2000, 100LL << std::min<int64_t>(attempt - 1, 5))));
    httplib::Headers headers;
    if (!cookies.empty()) {
      std::string jar;
      for (const auto& [k, v] : cookies) jar += (jar.empty() ? "" : "; ") + k + "=" + v;
      headers.emplace("Cookie", jar);
    }
    auto res = client.Post(path, headers, payload, "application/json");
    if (!res) {
      const httplib::Error e = res.error();
      *error = fmt::format("POST {}: {}", path,
                           e == httplib::Error::Connection ? "cannot connect"
                           : e == httplib::Error::Read
                               ? "no answer within grpo.env_timeout_s (or the connection dropped)"
                               : httplib::to_string(e));
      continue;
    }
    for (const auto& [k, v] : res->headers) {
      if (ascii_lower(k) != "set-cookie") continue;
      const std::string pair = v.substr(0, v.find(';'));
      const size_t eq = pair.find('=');
      if (eq != std::string::npos && eq > 0) cookies[pair.substr(0, eq)] = pair.substr(eq + 1);
    }
    if (res->status != 200) {
      *error = fmt::format("POST {}: HTTP {}: {}", path, res->status, res->body.substr(0, 200));
      continue;
    }
    try {
      return ojson::parse(res->body);
    } catch (const std::exception&) {
      *error = fmt::format("POST {}: the reply is not JSON: {}", path, res->body.substr(0, 200));
    }
  }
  return std::nullopt;
}

}  // namespace

GymEnvironment::GymEnvironment(const GrpoConfig& cfg)
    : url_(cfg.gym_url),
      timeout_s_(cfg.env_timeout_s),
      retries_(std::max<int64_t>(0, cfg.env_retries)) {
  if (url_.empty())
    usage_error(
        "grpo.gym_url: required by the gym reward (the base URL of a NeMo Gym resources server, "
        "e.g. http://127.0.0.1:8000)");
  if (!starts_with(url_, "http://") && !starts_with(url_, "https://"))
    usage_error("grpo.gym_url: '{}' is not an http:// or https:// URL", url_);
  if (!(timeout_s_ > 0)) usage_error("grpo.env_timeout_s: expected a positive number of seconds");
  const size_t host_start = url_.find("://") + 3;
  const size_t path_start = url_.find('/', host_start);
  base_ = path_start == std::string::npos ? url_ : url_.substr(0, path_start);
  prefix_ = path_start == std::string::npos ? "" : url_.substr(path_start);
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  if (!httplib::Client(base_).is_valid()) usage_error("grpo.gym_url: cannot use '{}'", url_);
}

ojson GymEnvironment::seed_session_body(const Rollout& r) { return task_fields(r); }

ojson GymEnvironment::verify_body(const Rollout& r) {
  ojson body = task_fields(r);
  body["response"] = response_object(r);
  return body;
}

double GymEnvironment::score_one(const Rollout& r, std::string* error) const {
  httplib::Client client(base_);
  const auto sec = static_cast<time_t>(timeout_s_);
  const auto usec = static_cast<time_t>((timeout_s_ - static_cast<double>(sec)) * 1e6);
  client.set_connection_timeout(sec, usec);
  client.set_read_timeout(sec, usec);
  client.set_write_timeout(sec, usec);
  std::map<std::string, std::string> cookies;
  if (!post(client, prefix_ + "/seed_session", seed_session_body(r), retries_, cookies, error))
    return std::numeric_limits<double>::quiet_NaN();
  auto reply = post(client, prefix_ + "/verify", verify_body(r), retries_, cookies, error);
  if (!reply) return std::numeric_limits<double>::quiet_NaN();
  if (!reply->is_object() || !reply->contains("reward") || !(*reply)["reward"].is_number()) {
    *error = "POST /verify: the reply has no numeric \"reward\"";
    return std::numeric_limits<double>::quiet_NaN();
  }
  return (*reply)["reward"].get<double>();
}

std::vector<double> GymEnvironment::score(const std::vector<Rollout>& rollouts) {
  std::vector<double> out(rollouts.size(), std::numeric_limits<double>::quiet_NaN());
  std::vector<std::string> errors(rollouts.size());
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i = next++; i < rollouts.size(); i = next++) {
      try {
        out[i] = score_one(rollouts[i], &errors[i]);
      } catch (const std::exception& e) {
        errors[i] = e.what();
      }
    }
  };
  std::vector<std::thread> threads;
  const size_t n = std::min(kMaxThreads, rollouts.size());
  for (size_t t = 1; t < n; ++t) threads.emplace_back(work);
  work();
  for (auto& t : threads) t.join();

  int64_t failed = 0;
  std::string first;
  for (size_t i = 0; i < out.size(); ++i) {
    if (!std::isnan(out[i])) continue;
    ++failed;
    if (first.empty()) first = errors[i];
  }
  if (failed > 0)
    log_warn("gym reward: {} of {} rollouts could not be scored by {} after {} retries ({})",
             failed, rollouts.size(), url_, retries_, first);
  return out;
}

}  // namespace reef
