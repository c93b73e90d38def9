// Implementation of eval/endpoint.h with cpp-httplib.
#include "reef/eval/endpoint.h"

#include <httplib.h>

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/strings.h"
#include "reef/eval/tokenization.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;
using Tokens = std::vector<int32_t>;

}  // namespace

struct EndpointModel::Http {
  std::unique_ptr<httplib::Client> client;
};

EndpointModel::EndpointModel(EndpointOptions opts, std::unique_ptr<Tokenizer> tokenizer)
    : opts_(std::move(opts)), tokenizer_(std::move(tokenizer)), http_(std::make_unique<Http>()) {
  const std::string& url = opts_.url;
  if (!starts_with(url, "http://") && !starts_with(url, "https://"))
    usage_error("--endpoint: '{}' is not an http:// or https:// URL", url);
  const size_t host_start = url.find("://") + 3;
  const size_t path_start = url.find('/', host_start);
  const std::string base = path_start == std::string::npos ? url : url.substr(0, path_start);
  prefix_ = path_start == std::string::npos ? "" : url.substr(path_start);
  while (!prefix_.empty() && prefix_.back() == '/') prefix_.pop_back();
  if (prefix_.empty()) prefix_ = "/v1";
  http_->client = std::make_unique<httplib::Client>(base);
  if (!http_->client->is_valid()) usage_error("--endpoint: cannot use '{}'", url);
  const auto secs = static_cast<time_t>(opts_.timeout_s);
  http_->client->set_read_timeout(secs, 0);
  http_->client->set_write_timeout(secs, 0);
  http_->client->set_connection_timeout(10, 0);
  if (!opts_.api_key.empty()) http_->client->set_bearer_token_auth(opts_.api_key.c_str());
}

EndpointModel::~EndpointModel() = default;

std::string EndpointModel::describe() const {
  return "endpoint " + opts_.url + (opts_.model.empty() ? "" : " model " + opts_.model);
}

json EndpointModel::post(const std::string& path, const json& body) {
  const std::string full = prefix_ + path;
  auto res = http_->client->Post(full, body.dump(), "application/json");
  if (!res)
    fail("endpoint {}{}: request failed: {}", opts_.url, path, httplib::to_string(res.error()));
  if (res->status != 200) {
    std::string msg = res->body.substr(0, 300);
    try {
      auto j = json::parse(res->body);
      if (j.contains("error"))
        msg = j["error"].is_object() ? j["error"].value("message", msg) : j["error"].dump();
    } catch (const std::exception&) {
    }
    fail("endpoint {}{}: HTTP {}: {}", opts_.url, path, res->status, msg);
  }
  try {
    return json::parse(res->body);
  } catch (const json::parse_error& e) {
    fail("endpoint {}{}: the reply is not JSON: {}", opts_.url, path, e.what());
  }
}

LoglikelihoodResult EndpointModel::score_ids(const Tokens& ids, size_t n_cont) {
  json body = {
      {"prompt", ids}, {"max_tokens", 0}, {"echo", true}, {"logprobs", 1}, {"temperature", 0.0}};
  if (!opts_.model.empty()) body["model"] = opts_.model;
  json r = post("/completions", body);
  const json& lp = r["choices"][0]["logprobs"];
  if (!lp.is_object() || !lp.contains("token_logprobs"))
    fail(
        "endpoint {}: no prompt logprobs in the reply (the server must support echo with logprobs)",
        opts_.url);
  const json& tl = lp["token_logprobs"];
  if (tl.size() < ids.size())
    fail("endpoint {}: {} prompt logprobs for a prompt of {} tokens", opts_.url, tl.size(),
         ids.size());
  LoglikelihoodResult out{0, true};
  for (size_t j = ids.size() - n_cont; j < ids.size(); ++j) {
    out.logprob += tl[j].get<double>();
    if (lp.contains("top_logprobs") && lp["top_logprobs"].is_array() &&
        lp["top_logprobs"][j].is_object()) {
      double best = -1e300;
      for (auto& [k, v] : lp["top_logprobs"][j].items()) best = std::max(best, v.get<double>());
      if (tl[j].get<double>() < best) out.is_greedy = false;
    }
  }
  return out;
}

std::vector<LoglikelihoodResult> EndpointModel::loglikelihood(
    const std::vector<std::pair<std::string, std::string>>& requests, const ProgressFn& progress) {
  std::vector<LoglikelihoodResult> out;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& [ctx, cont] = requests[i];
    if (tokenizer_) {
      auto [c, k] = hflm_encode_pair(*tokenizer_, ctx, cont);
      if (k.empty()) usage_error("loglikelihood: the continuation '{}' encodes to no tokens", cont);
      Tokens all = c;
      all.insert(all.end(), k.begin(), k.end());
      const size_t keep = std::min(all.size(), static_cast<size_t>(opts_.max_length + 1));
      Tokens inp(all.end() - static_cast<std::ptrdiff_t>(keep), all.end());
      out.push_back(score_ids(inp, k.size()));
    } else {
      // Text prompt: the continuation's tokens are those starting at or after the context's end.
      json body = {{"prompt", ctx + cont},
                   {"max_tokens", 0},
                   {"echo", true},
                   {"logprobs", 1},
                   {"temperature", 0.0}};
      if (!opts_.model.empty()) body["model"] = opts_.model;
      json r = post("/completions", body);
      const json& lp = r["choices"][0]["logprobs"];
      if (!lp.is_object() || !lp.contains("text_offset") || !lp.contains("token_logprobs"))
        fail("endpoint {}: no prompt logprobs with text_offset in the reply", opts_.url);
      const int64_t ctx_chars = static_cast<int64_t>(ctx.size());
      LoglikelihoodResult res{0, true};
      for (size_t j = 0; j < lp["token_logprobs"].size(); ++j) {
        if (lp["text_offset"][j].get<int64_t>() < ctx_chars || lp["token_logprobs"][j].is_null())
          continue;
        res.logprob += lp["token_logprobs"][j].get<double>();
      }
      out.push_back(res);
    }
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  return out;
}

std::vector<double> EndpointModel::loglikelihood_rolling(const std::vector<std::string>& texts,
                                                         const ProgressFn& progress) {
  if (!tokenizer_)
    usage_error(
        "loglikelihood_rolling through --endpoint needs the model's tokenizer (--tokenizer DIR)");
  std::vector<double> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    double total = 0;
    for (const auto& [ctx, cont] :
         rolling_windows(hflm_encode(*tokenizer_, texts[i], true), hflm_prefix_token(*tokenizer_),
                         opts_.max_length)) {
      Tokens all = ctx;
      all.insert(all.end(), cont.begin(), cont.end());
      total += score_ids(all, cont.size()).logprob;
    }
    out.push_back(total);
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  return out;
}

std::vector<std::string> EndpointModel::generate_until(const std::vector<GenerateRequest>& requests,
                                                       const ProgressFn& progress) {
  std::vector<std::string> out;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    json stop = json::array();
    for (const auto& s : r.until)
      if (!s.empty()) stop.push_back(s);
    json body = {{"prompt", r.context}, {"max_tokens", r.max_gen_toks}, {"temperature", 0.0}};
    if (!stop.empty()) body["stop"] = stop;
    if (!opts_.model.empty()) body["model"] = opts_.model;
    json reply = post("/completions", body);
    if (!reply.contains("choices") || reply["choices"].empty() ||
        !reply["choices"][0].contains("text"))
      fail("endpoint {}: the completion reply has no choices[0].text", opts_.url);
    out.push_back(cut_at_stops(reply["choices"][0]["text"].get<std::string>(), r.until));
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  return out;
}

std::string EndpointModel::chat(const std::string& system, const std::string& user,
                                int64_t max_tokens) {
  json body = {{"messages", json::array({{{"role", "system"}, {"content", system}},
                                         {{"role", "user"}, {"content", user}}})},
               {"max_tokens", max_tokens},
               {"temperature", 0.0}};
  if (!opts_.model.empty()) body["model"] = opts_.model;
  json reply = post("/chat/completions", body);
  try {
    return reply.at("choices").at(0).at("message").at("content").get<std::string>();
  } catch (const json::exception&) {
    fail("endpoint {}: the chat reply has no choices[0].message.content", opts_.url);
  }
}

}  // namespace reef::eval
