// Implementation of infer/generate.h.
#include "reef/infer/generate.h"

#include <algorithm>

#include "reef/base/error.h"

namespace reef {

int64_t sample_next(const torch::Tensor& logits_in, const SamplingParams& p,
                    torch::Generator& gen) {
  auto logits = logits_in.to(torch::kFloat).reshape({-1});  // [V]
  if (p.temperature <= 0) return logits.argmax().item<int64_t>();
  logits = logits / p.temperature;
  const int64_t V = logits.size(0);
  if (p.top_k > 0 && p.top_k < V) {
    auto kth = std::get<0>(logits.topk(p.top_k)).min();
    logits = logits.masked_fill(logits < kth, -std::numeric_limits<float>::infinity());
  }
  auto probs = torch::softmax(logits, 0);
  if (p.top_p < 1.0) {
    auto sorted = probs.sort(0, /*descending=*/true);
    auto sp = std::get<0>(sorted), idx = std::get<1>(sorted);
    auto cum = sp.cumsum(0);
    // Keep the smallest prefix whose mass reaches top_p (the token crossing it included).
    auto drop = (cum - sp) >= p.top_p;
    sp = sp.masked_fill(drop, 0);
    probs = torch::zeros_like(probs).scatter(0, idx, sp);
  }
  // Inverse CDF over one uniform draw: the first token whose cumulative mass exceeds it, so a
  // token of probability 0 is never drawn (torch::multinomial's exponential race can pick one
  // when a draw is exactly 0).
  auto cum = probs.cumsum(0);
  const double u = torch::rand({1}, gen, torch::kDouble).item<double>();
  const int64_t i = (cum <= u * cum[V - 1].item<double>()).sum().item<int64_t>();
  return std::min(i, V - 1);
}

Generation generate(CausalLM& model, const Tokenizer& tokenizer, const std::vector<int32_t>& prompt,
                    const SamplingParams& p) {
  if (prompt.empty()) usage_error("generate: the prompt is empty");
  const int64_t max_len = model->config().max_seq_len;
  if (static_cast<int64_t>(prompt.size()) >= max_len)
    usage_error("generate: the prompt has {} tokens; the model's context is {}", prompt.size(),
                max_len);
  torch::NoGradGuard ng;
  model->eval();
  auto device = model->parameters().front().device();
  auto gen = torch::make_generator<at::CPUGeneratorImpl>(p.seed);
  Generation out;
  out.finish_reason = "length";
  KVCache cache;
  std::vector<int64_t> all(prompt.begin(), prompt.end());
  torch::Tensor next_input = torch::tensor(all, torch::kInt64).unsqueeze(0).to(device);  // [1, T]
  for (int64_t i = 0; i < p.max_new_tokens; ++i) {
    if (static_cast<int64_t>(all.size()) >= max_len) break;
    torch::Tensor logits;
    if (p.use_cache) {
      logits = model->forward(next_input, &cache);
    } else {
      logits = model->forward(torch::tensor(all, torch::kInt64).unsqueeze(0).to(device));
    }
    int64_t id = sample_next(logits.select(1, logits.size(1) - 1).squeeze(0).cpu(), p, gen);
    if (p.stop_at_eos && id == tokenizer.eos_id()) {
      out.finish_reason = "stop";
      break;
    }
    out.tokens.push_back(static_cast<int32_t>(id));
    all.push_back(id);
    next_input = torch::tensor({id}, torch::kInt64).unsqueeze(0).to(device);
    if (!p.stop.empty()) {
      std::string text = tokenizer.decode(out.tokens);
      bool hit = false;
      for (const auto& s : p.stop) {
        auto pos = s.empty() ? std::string::npos : text.find(s);
        if (pos != std::string::npos) {
          out.text = text.substr(0, pos);
          hit = true;
          break;
        }
      }
      if (hit) {
        out.finish_reason = "stop";
        return out;
      }
    }
  }
  out.text = tokenizer.decode(out.tokens);
  return out;
}

}  // namespace reef
