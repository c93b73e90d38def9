// Implementation of align/reward_score.h.
#include "reef/align/reward_score.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <numeric>

#include "reef/align/reward_loss.h"
#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/data/preference.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

// A row's sequences: two for a pair, one otherwise.
struct RowSequences {
  int64_t line = 0;
  std::vector<std::vector<int32_t>> seqs;
};

std::vector<int32_t> concat(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  std::vector<int32_t> out = a;
  out.insert(out.end(), b.begin(), b.end());
  return out;
}

// The row as the preference builder tokenizes it: a single sequence is a pair whose two
// answers are the same (its prompt is then everything before the last message or character).
RowSequences row_sequences(const PreferencePairBuilder& builder, const ojson& record,
                           const std::string& source, int64_t line) {
  if (!record.is_object()) usage_error("{}: expected a JSON object", source);
  RowSequences r;
  r.line = line;
  if (record.contains("chosen") || record.contains("rejected")) {
    PreferencePair p = builder.build(record, source);
    r.seqs.push_back(concat(p.prompt, p.chosen));
    r.seqs.push_back(concat(p.prompt, p.rejected));
    return r;
  }
  ojson pair = ojson::object();
  for (const char* k : {"tools", "chat_template_kwargs"})
    if (record.contains(k)) pair[k] = record[k];
  if (record.contains("messages")) {
    pair["chosen"] = pair["rejected"] = record["messages"];
  } else if (record.contains("prompt") && record.contains("completion")) {
    pair["prompt"] = record["prompt"];
    pair["chosen"] = pair["rejected"] = record["completion"];
  } else if (record.contains("text")) {
    pair["chosen"] = pair["rejected"] = record["text"];
  } else {
    usage_error(
        "{}: a row to score has \"chosen\" and \"rejected\" (a pair), \"messages\", \"prompt\" "
        "and \"completion\", or \"text\"",
        source);
  }
  PreferencePair p = builder.build(pair, source);
  r.seqs.push_back(concat(p.prompt, p.chosen));
  return r;
}

}  // namespace

torch::Tensor score_sequences(CausalLM& model, const std::vector<std::vector<int32_t>>& sequences,
                              int64_t batch_size) {
  const ModelConfig& c = model->config();
  const int64_t n = static_cast<int64_t>(sequences.size());
  auto scores = torch::empty({n}, torch::kFloat);
  if (n == 0) return scores;
  float* out = scores.data_ptr<float>();
  // Longest first, so each batch pads little.
  std::vector<int64_t> order(static_cast<size_t>(n));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    return sequences[static_cast<size_t>(a)].size() > sequences[static_cast<size_t>(b)].size();
  });
  const int32_t pad = static_cast<int32_t>(c.pad_token_id >= 0 ? c.pad_token_id : 0);
  const torch::Device device = model->parameters().front().device();
  torch::NoGradGuard ng;
  model->eval();
  for (int64_t b0 = 0; b0 < n; b0 += std::max<int64_t>(1, batch_size)) {
    const int64_t b1 = std::min(n, b0 + std::max<int64_t>(1, batch_size));
    const auto T = static_cast<int64_t>(sequences[static_cast<size_t>(order[b0])].size());
    auto ids = torch::full({b1 - b0, T}, pad, torch::kLong);
    auto real = torch::zeros({b1 - b0, T}, torch::kLong);  // 1 on each sequence's own tokens
    int64_t* id = ids.data_ptr<int64_t>();
    int64_t* re = real.data_ptr<int64_t>();
    for (int64_t i = b0; i < b1; ++i) {
      const auto& s = sequences[static_cast<size_t>(order[i])];
      std::copy(s.begin(), s.end(), id + (i - b0) * T);
      std::fill_n(re + (i - b0) * T, s.size(), 1);
    }
    auto logits = model->forward(ids.to(device)).to(torch::kCPU);  // [B, T, 1]
    auto pos = last_scored_position(ids, real, 1, c.pad_token_id);
    auto s = logits.select(2, 0).to(torch::kFloat).gather(1, pos.unsqueeze(1)).squeeze(1);
    const float* sp = s.contiguous().data_ptr<float>();
    for (int64_t i = b0; i < b1; ++i) out[order[i]] = sp[i - b0];
  }
  return scores;
}

ScoreSummary score_jsonl(CausalLM& model, const Tokenizer& tokenizer,
                         const ChatTemplate& chat_template, const std::string& input,
                         std::ostream& out, const ScoreOptions& options) {
  const ModelConfig& c = model->config();
  if (c.num_labels != 1)
    usage_error(
        "the model is not a reward model: {}; reef score needs a sequence classifier with one "
        "output (reef align rm, or a *ForSequenceClassification folder with num_labels 1)",
        c.num_labels == 0 ? std::string("a language model")
                          : fmt::format("a classifier with {} labels", c.num_labels));
  if (!path_exists(input)) usage_error("--input: file not found: {}", input);
  PreferencePairBuilder builder(tokenizer, chat_template);
  ScoreSummary sum;
  std::vector<RowSequences> rows;
  // Rows are scored a chunk at a time, so a large file never sits in memory as tokens.
  auto flush = [&] {
    std::vector<std::vector<int32_t>> seqs;
    for (const auto& r : rows)
      for (const auto& s : r.seqs) seqs.push_back(s);
    auto scored = score_sequences(model, seqs, options.batch_size);
    const float* scores = scored.data_ptr<float>();
    int64_t k = 0;
    for (const auto& r : rows) {
      ojson line = {{"line", r.line}};
      if (r.seqs.size() == 2) {
        const double a = scores[k], b = scores[k + 1];
        line["chosen_score"] = a;
        line["rejected_score"] = b;
        ++sum.pairs;
        if (a > b) ++sum.correct;
      } else {
        line["score"] = static_cast<double>(scores[k]);
      }
      k += static_cast<int64_t>(r.seqs.size());
      ++sum.rows;
      out << line.dump() << "\n";
    }
    rows.clear();
  };
  std::function<void(const std::string&)> on_malformed;
  if (options.skip_bad_rows) on_malformed = [&](const std::string&) { ++sum.skipped; };
  for_each_jsonl_record(
      input,
      [&](ojson record, const std::string& source) {
        const int64_t line = std::stoll(source.substr(source.rfind(':') + 1));
        try {
          RowSequences r = row_sequences(builder, record, source, line);
          for (const auto& s : r.seqs)
            if (static_cast<int64_t>(s.size()) > c.max_seq_len)
              usage_error("{}: {} tokens, more than the model's max_seq_len {}", source, s.size(),
                          c.max_seq_len);
          rows.push_back(std::move(r));
        } catch (const Error& e) {
          if (!options.skip_bad_rows || e.kind() != ErrorKind::kUsage) throw;
          ++sum.skipped;
        }
        if (rows.size() >= 256) flush();
        return true;
      },
      on_malformed);
  flush();
  out.flush();
  return sum;
}

}  // namespace reef
