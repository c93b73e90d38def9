// Implementation of align/rollouts.h.
#include "reef/align/rollouts.h"

#include <algorithm>

#include "reef/base/error.h"
#include "reef/train/batches.h"

namespace reef {

std::vector<Completion> generate_completions(CausalLM& model, const Tokenizer& tokenizer,
                                             const std::vector<std::vector<int32_t>>& prompts,
                                             const std::vector<uint64_t>& seeds,
                                             const RolloutOptions& options) {
  if (prompts.size() != seeds.size())
    fail("rollouts: {} prompts but {} seeds (internal error)", prompts.size(), seeds.size());
  const auto G = options.group;
  const auto total = static_cast<int64_t>(prompts.size()) * G;
  EngineOptions eo = options.engine;
  size_t longest = 0;
  for (const auto& p : prompts) longest = std::max(longest, p.size());
  eo.slot_len = static_cast<int64_t>(longest) + options.sampling.max_new_tokens + 1;
  if (eo.max_slots <= 0) eo.max_slots = total;
  eo.max_waiting = total;
  std::vector<Completion> out(static_cast<size_t>(total));
  {
    Engine engine(model, tokenizer, eo);
    std::vector<RequestParams> params;
    for (size_t j = 0; j < prompts.size(); ++j) {
      RequestParams rp;
      rp.sampling = options.sampling;
      rp.sampling.seed = seeds[j];
      rp.logprobs = 0;
      rp.n = G;
      params.push_back(rp);
    }
    // All at once: the engine's schedule, and so every number, is the same in every run.
    auto streams = engine.submit_many(prompts, params);
    if (streams.size() != prompts.size())
      fail("rollouts: the engine refused the batch (internal error: queue full)");
    for (size_t j = 0; j < streams.size(); ++j) {
      TokenEvent ev;
      while (!streams[j]->done()) {
        if (!streams[j]->next(&ev, EngineClock::now() + std::chrono::hours(24))) continue;
        Completion& c = out[j * static_cast<size_t>(G) + static_cast<size_t>(ev.index)];
        if (ev.token >= 0) {
          c.tokens.push_back(ev.token);
          c.logprobs.push_back(ev.logprob);
        }
        c.text += ev.text;
        if (ev.finished) {
          if (ev.finish_reason == "error") fail("rollouts: generation failed: {}", ev.error);
          if (ev.eos_token >= 0) {
            c.tokens.push_back(ev.eos_token);
            c.logprobs.push_back(ev.eos_logprob);
          }
          c.truncated = ev.finish_reason == "length";
        }
      }
    }
    engine.shutdown();
  }
  return out;
}

void RolloutView::sample(int64_t i, std::vector<int32_t>* out) const {
  const RolloutRow& r = row(i);
  if (static_cast<int64_t>(r.tokens.size()) > seq_len_ + 1)
    fail("rollouts: a row of {} tokens exceeds seq_len + 1 = {} (internal error)", r.tokens.size(),
         seq_len_ + 1);
  out->assign(r.tokens.begin(), r.tokens.end());
  out->resize(static_cast<size_t>(seq_len_ + 1), pad_id_);
}

bool RolloutView::layout(int64_t i, SampleLayout* out) const {
  const RolloutRow& r = row(i);
  const auto T = static_cast<size_t>(seq_len_);
  const size_t L = std::min(r.tokens.size(), T);  // input positions holding tokens
  out->segment_ids.assign(T, 0);
  out->position_ids.resize(T);
  out->target_mask.assign(T, 0);
  for (size_t t = 0; t < T; ++t) {
    out->position_ids[t] = static_cast<int32_t>(t < L ? t : t - L);  // padding: its own run
    if (t < L) out->segment_ids[t] = 1;
    // Input t predicts token t + 1: a completion token of a counted row.
    if (r.counted && t < L && t + 1 < r.tokens.size() &&
        static_cast<int64_t>(t + 1) >= r.prompt_len)
      out->target_mask[t] = 1;
  }
  return true;
}

bool RolloutView::values(int64_t i, std::vector<float>* out) const {
  const RolloutRow& r = row(i);
  if (r.values.empty()) return false;
  *out = r.values;
  return true;
}

const RolloutRow& RolloutRows::row(int64_t i) const {
  const int64_t local = i - step_ * rows_per_step_;
  if (local < 0 || local >= rows_per_step_)
    fail("rollouts: sample {} is not one of step {}'s (internal error)", i, step_ + 1);
  return RolloutView::row(slice_ * rows_per_step_ + local);
}

void fill_token_logps(CausalLM& model, std::vector<RolloutRow>& rows, int64_t seq_len,
                      int32_t pad_id, int64_t micro_batch, double temperature, size_t offset,
                      bool bf16) {
  torch::NoGradGuard ng;
  const bool was_training = model->is_training();
  model->eval();
  const torch::Device device = model->parameters().front().device();
  const auto T = static_cast<size_t>(seq_len);
  for (auto& r : rows)
    if (r.values.size() < offset + T) r.values.resize(offset + T, 0.0f);
  RolloutView view(rows, seq_len, pad_id);
  const auto n = static_cast<int64_t>(rows.size());
  for (int64_t first = 0; first < n; first += micro_batch) {
    const int64_t m = std::min(micro_batch, n - first);
    TrainBatch b = make_train_batch(view, first, m, model->config().vocab_size, device);
    mark_head_positions(b);  // as the train step marks them: the same numbers
    ModelOutputs out = forward_batch(model, b, bf16);
    auto logp = (-out.token_cross_entropy(b.targets, temperature)).to(torch::kCPU).contiguous();
    const int64_t width = logp.size(1);
    const float* p = logp.data_ptr<float>();
    for (int64_t k = 0; k < m; ++k) {
      auto& v = rows[static_cast<size_t>(first + k)].values;
      std::fill(v.begin() + static_cast<std::ptrdiff_t>(offset),
                v.begin() + static_cast<std::ptrdiff_t>(offset + T), 0.0f);
      std::copy(p + k * width, p + (k + 1) * width,
                v.begin() + static_cast<std::ptrdiff_t>(offset));
    }
  }
  if (was_training) model->train();
}

}  // namespace reef
