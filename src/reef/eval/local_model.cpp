// Implementation of eval/local_model.h.
#include "reef/eval/local_model.h"

#include "reef/base/error.h"
#include "reef/eval/tokenization.h"
#include "reef/infer/generate.h"

namespace reef::eval {
namespace {

using Tokens = std::vector<int32_t>;

torch::Tensor to_tensor(const std::vector<int64_t>& v, int64_t rows, int64_t cols,
                        const torch::Device& d) {
  return torch::tensor(v, torch::kInt64).reshape({rows, cols}).to(d);
}

// Sum of log p(cont[j]) over rows of logprobs [n, V] (float), and whether each is the argmax.
LoglikelihoodResult sum_logprobs(const torch::Tensor& logprobs, const Tokens& cont) {
  auto idx = torch::tensor(std::vector<int64_t>(cont.begin(), cont.end()), torch::kInt64)
                 .to(logprobs.device());
  auto picked = logprobs.gather(1, idx.unsqueeze(1)).squeeze(1);  // [n]
  bool greedy = logprobs.argmax(1).eq(idx).all().item<bool>();
  return {picked.sum().item<float>(), greedy};
}

}  // namespace

LocalModel::LocalModel(CausalLM model, std::unique_ptr<Tokenizer> tokenizer, std::string name,
                       LocalModelOptions opts)
    : model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      name_(std::move(name)),
      opts_(opts),
      device_(model_->parameters().front().device()) {
  max_length_ = opts_.max_length > 0 ? opts_.max_length : model_->config().max_seq_len;
  if (opts_.batch_size < 1) usage_error("--batch-size must be >= 1, got {}", opts_.batch_size);
  if (max_length_ > model_->config().max_seq_len)
    usage_error("--max-length {} exceeds the model's context of {} tokens", max_length_,
                model_->config().max_seq_len);
  model_->eval();
}

int32_t LocalModel::prefix_token() const { return hflm_prefix_token(*tokenizer_); }

Tokens LocalModel::encode(const std::string& text, bool add_special_tokens) const {
  return hflm_encode(*tokenizer_, text, add_special_tokens);
}

std::pair<Tokens, Tokens> LocalModel::encode_pair(const std::string& context,
                                                  const std::string& continuation) const {
  return hflm_encode_pair(*tokenizer_, context, continuation);
}

std::vector<LoglikelihoodResult> LocalModel::score_tokens(
    const std::vector<std::pair<Tokens, Tokens>>& requests) {
  torch::NoGradGuard no_grad;
  std::vector<LoglikelihoodResult> out(requests.size());
  for (size_t b0 = 0; b0 < requests.size(); b0 += static_cast<size_t>(opts_.batch_size)) {
    const size_t b1 = std::min(requests.size(), b0 + static_cast<size_t>(opts_.batch_size));
    std::vector<Tokens> inputs;
    int64_t width = 0;
    for (size_t i = b0; i < b1; ++i) {
      const auto& [ctx, cont] = requests[i];
      if (cont.empty()) usage_error("loglikelihood: the continuation encodes to no tokens");
      if (static_cast<int64_t>(cont.size()) > max_length_)
        usage_error("loglikelihood: a continuation of {} tokens exceeds max_length {}", cont.size(),
                    max_length_);
      Tokens all = ctx;
      all.insert(all.end(), cont.begin(), cont.end());
      // (context + continuation)[-(max_length + 1):][:-1]
      const size_t keep = std::min(all.size(), static_cast<size_t>(max_length_ + 1));
      Tokens inp(all.end() - static_cast<std::ptrdiff_t>(keep), all.end() - 1);
      width = std::max<int64_t>(width, static_cast<int64_t>(inp.size()));
      inputs.push_back(std::move(inp));
    }
    const int64_t rows = static_cast<int64_t>(inputs.size());
    std::vector<int64_t> flat(static_cast<size_t>(rows * width), 0);  // right padding
    for (int64_t r = 0; r < rows; ++r)
      std::copy(inputs[r].begin(), inputs[r].end(), flat.begin() + r * width);
    auto logprobs = torch::log_softmax(
        model_->forward(to_tensor(flat, rows, width, device_)).to(torch::kFloat), -1);
    for (int64_t r = 0; r < rows; ++r) {
      const Tokens& cont = requests[b0 + static_cast<size_t>(r)].second;
      const int64_t len = static_cast<int64_t>(inputs[r].size()),
                    n = static_cast<int64_t>(cont.size());
      out[b0 + static_cast<size_t>(r)] = sum_logprobs(logprobs[r].narrow(0, len - n, n), cont);
    }
  }
  return out;
}

std::vector<LoglikelihoodResult> LocalModel::score_shared_context(
    const Tokens& context, const std::vector<Tokens>& conts) {
  torch::NoGradGuard no_grad;
  KVCache cache;
  const int64_t c = static_cast<int64_t>(context.size());
  auto ctx_logits = model_->forward(
      to_tensor(std::vector<int64_t>(context.begin(), context.end()), 1, c, device_), &cache);
  auto first = torch::log_softmax(ctx_logits[0][c - 1].to(torch::kFloat),
                                  -1);  // [V]: each continuation's first token
  const int64_t g = static_cast<int64_t>(conts.size());
  int64_t width = 0;
  for (const auto& k : conts) width = std::max<int64_t>(width, static_cast<int64_t>(k.size()) - 1);
  torch::Tensor rest;  // [G, width, V]
  if (width > 0) {
    for (auto* kv : {&cache.k, &cache.v})
      for (auto& t : *kv) t = t.expand({g, t.size(1), t.size(2), t.size(3)}).contiguous();
    std::vector<int64_t> flat(static_cast<size_t>(g * width), 0);
    for (int64_t r = 0; r < g; ++r)
      for (size_t j = 0; j + 1 < conts[r].size(); ++j)
        flat[r * width + static_cast<int64_t>(j)] = conts[r][j];
    rest = torch::log_softmax(
        model_->forward(to_tensor(flat, g, width, device_), &cache).to(torch::kFloat), -1);
  }
  std::vector<LoglikelihoodResult> out;
  for (int64_t r = 0; r < g; ++r) {
    const Tokens& k = conts[r];
    const int64_t n = static_cast<int64_t>(k.size());
    auto rows = first.unsqueeze(0);
    if (n > 1) rows = torch::cat({rows, rest[r].narrow(0, 0, n - 1)}, 0);
    out.push_back(sum_logprobs(rows, k));
  }
  return out;
}

std::vector<LoglikelihoodResult> LocalModel::loglikelihood(
    const std::vector<std::pair<std::string, std::string>>& requests, const ProgressFn& progress) {
  std::vector<LoglikelihoodResult> out(requests.size());
  size_t i = 0;
  while (i < requests.size()) {
    // Consecutive requests with one context (a multiple-choice document's choices) share it.
    size_t j = i + 1;
    while (j < requests.size() && requests[j].first == requests[i].first) ++j;
    std::vector<std::pair<Tokens, Tokens>> enc;
    for (size_t r = i; r < j; ++r)
      enc.push_back(encode_pair(requests[r].first, requests[r].second));
    bool shared = true;
    for (const auto& [ctx, cont] : enc) {
      if (cont.empty())
        usage_error("loglikelihood: the continuation '{}' encodes to no tokens",
                    requests[i].second);
      shared = shared && ctx == enc[0].first &&
               static_cast<int64_t>(ctx.size() + cont.size()) <= max_length_ + 1;
    }
    std::vector<LoglikelihoodResult> res;
    if (shared) {
      std::vector<Tokens> conts;
      for (auto& e : enc) conts.push_back(e.second);
      res = score_shared_context(enc[0].first, conts);
    } else {
      res = score_tokens(enc);
    }
    std::copy(res.begin(), res.end(), out.begin() + static_cast<std::ptrdiff_t>(i));
    i = j;
    if (progress) progress(static_cast<int64_t>(i));
  }
  return out;
}

std::vector<double> LocalModel::loglikelihood_rolling(const std::vector<std::string>& texts,
                                                      const ProgressFn& progress) {
  std::vector<double> out;
  for (size_t i = 0; i < texts.size(); ++i) {
    auto windows = rolling_windows(encode(texts[i]), prefix_token(), max_length_);
    double total = 0;
    for (const auto& r : score_tokens(windows)) total += r.logprob;
    out.push_back(total);
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  return out;
}

std::vector<std::string> LocalModel::generate_until(const std::vector<GenerateRequest>& requests,
                                                    const ProgressFn& progress) {
  std::vector<std::string> out;
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& r = requests[i];
    const int64_t max_ctx = max_length_ - r.max_gen_toks;
    if (max_ctx <= 0)
      usage_error("generate_until: max_gen_toks {} must be below max_length {}", r.max_gen_toks,
                  max_length_);
    Tokens ctx = encode(r.context);
    if (static_cast<int64_t>(ctx.size()) > max_ctx) ctx.erase(ctx.begin(), ctx.end() - max_ctx);
    if (ctx.empty()) ctx.push_back(prefix_token());
    SamplingParams p;
    p.temperature = 0;
    p.max_new_tokens = r.max_gen_toks;
    for (const auto& s : r.until)
      if (!s.empty()) p.stop.push_back(s);
    Generation g = generate(model_, *tokenizer_, ctx, p);
    out.push_back(cut_at_stops(utf8_lossy(g.text), r.until));
    if (progress) progress(static_cast<int64_t>(i + 1));
  }
  return out;
}

}  // namespace reef::eval
