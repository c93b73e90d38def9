// SFT samples: assistant spans from the chat template ({% generation %} or prefix rendering),
// mapped onto tokens by aligning each token's text with the rendered conversation (or, when a
// normalizer rewrote the text, by checking that each span boundary is a boundary of the
// encoding of the text before it).
#include "reef/data/sft.h"

#include <algorithm>
#include <optional>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/strings.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

bool is_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r' || c == '\f' || c == '\v';
}

bool all_space(const std::string& s, size_t b, size_t e) {
  for (size_t i = b; i < e; ++i)
    if (!is_space(s[i])) return false;
  return true;
}

// The text a token stands for, as exactly as the tokenizer can say.
std::string piece_of(const Tokenizer& tok, int32_t id) {
  if (auto* hf = dynamic_cast<const HfTokenizer*>(&tok)) return hf->token_text(id);
  return tok.decode({id}, true);
}

// End offset in `text` of each token, by walking the tokens' texts along `text`; a space in a
// token that the text lacks is one the tokenizer inserted (Metaspace / Prepend) and covers
// nothing. nullopt when the pieces do not spell the text (a normalizer changed it).
std::optional<std::vector<size_t>> token_ends(const Tokenizer& tok, const std::vector<int32_t>& ids,
                                              const std::string& text) {
  std::vector<size_t> ends;
  ends.reserve(ids.size());
  size_t pos = 0;
  for (int32_t id : ids) {
    std::string piece = piece_of(tok, id);
    for (char c : piece) {
      if (pos < text.size() && text[pos] == c)
        ++pos;
      else if (c != ' ')
        return std::nullopt;
    }
    ends.push_back(pos);
  }
  if (pos != text.size()) return std::nullopt;
  return ends;
}

std::string excerpt(const std::string& s, size_t b, size_t e) {
  std::string out = s.substr(b, std::min<size_t>(e - b, 40));
  for (char& c : out)
    if (c == '\n') c = ' ';
  return out;
}

std::string located(const std::string& source, const std::string& what) {
  return starts_with(what, source + ":") ? what : source + ": " + what;
}

}  // namespace

int64_t SftSample::supervised_tokens() const {
  int64_t n = 0;
  for (uint8_t m : loss_mask) n += m;
  return n;
}

SftSampleBuilder::SftSampleBuilder(const Tokenizer& tokenizer, ChatTemplate chat_template,
                                   ojson variables)
    : tok_(tokenizer), template_(std::move(chat_template)), variables_(std::move(variables)) {}

std::vector<int32_t> SftSampleBuilder::encode(const std::string& text, bool add_special) const {
  // As transformers tokenizes a rendered chat: special-token text becomes the special ids.
  if (auto* hf = dynamic_cast<const HfTokenizer*>(&tok_))
    return hf->encode(text, EncodeOptions{add_special, true});
  return tok_.encode(text);
}

SftSampleBuilder::Rendered SftSampleBuilder::render_messages(const ojson& messages,
                                                             const ojson& tools,
                                                             const std::string& source) const {
  if (!messages.is_array() || messages.empty())
    usage_error("{}: \"messages\" must be a non-empty list of messages", source);
  ChatOptions opts;
  opts.tools = tools;
  opts.variables = variables_;
  Rendered out;
  ChatRender full = template_.render(messages, opts);
  out.text = full.text;
  if (template_.has_generation_blocks(!tools.is_null())) {
    for (auto [b, e] : full.generation_spans)
      if (e > b) out.spans.emplace_back(b, e);
    return out;
  }
  for (size_t i = 0; i < messages.size(); ++i) {
    if (!messages[i].is_object() || messages[i].value("role", "") != "assistant") continue;
    ojson before = ojson::array(), upto = ojson::array();
    for (size_t k = 0; k < i; ++k) before.push_back(messages[k]);
    upto = before;
    upto.push_back(messages[i]);
    ChatOptions prompt_opts = opts;
    prompt_opts.add_generation_prompt = true;
    std::string prompt = template_.render(before, prompt_opts).text;
    std::string reply = template_.render(upto, opts).text;
    if (!starts_with(reply, prompt))
      usage_error(
          "{}: message {}: the template's generation prompt is not a prefix of the "
          "conversation with the assistant's reply, so the reply cannot be located; "
          "use a template with {{% generation %}} blocks",
          source, i);
    if (!starts_with(out.text, reply))
      usage_error(
          "{}: message {}: the template renders this turn differently once later turns "
          "follow (e.g. it drops earlier reasoning), so the reply cannot be located; use "
          "a template with {{% generation %}} blocks",
          source, i);
    size_t end = reply.size();
    while (end > prompt.size() && is_space(reply[end - 1])) --end;
    if (end > prompt.size()) out.spans.emplace_back(prompt.size(), end);
  }
  return out;
}

SftSample SftSampleBuilder::from_spans(const Rendered& r, const std::string& source) const {
  if (r.spans.empty())
    usage_error(
        "{}: the chat template marks no assistant text in this sample (no assistant "
        "message, or {{% generation %}} rendered nothing); nothing to learn from",
        source);
  SftSample s;
  s.source = source;
  s.input_ids = encode(r.text, false);
  s.loss_mask.assign(s.input_ids.size(), 0);
  const size_t n = s.input_ids.size();
  if (auto ends = token_ends(tok_, s.input_ids, r.text)) {
    for (auto [b, e] : r.spans) {
      size_t first = 0;
      while (first < n && (*ends)[first] <= b) ++first;
      size_t last = first;
      while (last < n && (last == 0 ? 0 : (*ends)[last - 1]) < e) ++last;  // one past the last
      if (first >= last) continue;
      size_t tok_begin = first == 0 ? 0 : (*ends)[first - 1], tok_end = (*ends)[last - 1];
      if (tok_begin < b && !all_space(r.text, tok_begin, b))
        usage_error(
            "{}: the assistant text starting at byte {} ('{}') begins inside token {} "
            "('{}'): the template's assistant span and the tokenization disagree",
            source, b, excerpt(r.text, b, e), first, excerpt(r.text, tok_begin, tok_end));
      if (tok_end > e && !all_space(r.text, e, tok_end))
        usage_error(
            "{}: the assistant text ending at byte {} ('{}') ends inside token {} ('{}'): "
            "the template's assistant span and the tokenization disagree",
            source, e, excerpt(r.text, b, e), last - 1, excerpt(r.text, tok_begin, tok_end));
      for (size_t t = first; t < last; ++t) s.loss_mask[t] = 1;
    }
  } else {
    // A normalizer rewrote the text: a boundary must split the encoding where the encoding of
    // the text before it ends.
    auto boundary = [&](size_t byte) {
      std::vector<int32_t> head = encode(r.text.substr(0, byte), false);
      if (head.size() > n || !std::equal(head.begin(), head.end(), s.input_ids.begin()))
        usage_error(
            "{}: the assistant span boundary at byte {} of the rendered conversation "
            "falls inside a token: the template's assistant span and the tokenization "
            "disagree",
            source, byte);
      return head.size();
    };
    for (auto [b, e] : r.spans)
      for (size_t t = boundary(b), end = boundary(e); t < end; ++t) s.loss_mask[t] = 1;
  }
  const int64_t sup = s.supervised_tokens();
  if (sup == 0)
    usage_error("{}: the assistant spans cover no token; nothing to learn from", source);
  if (sup == static_cast<int64_t>(n))
    usage_error(
        "{}: every token is supervised: the template rendered no prompt around the "
        "assistant text, which is almost certainly wrong",
        source);
  return s;
}

SftSample SftSampleBuilder::from_text_pair(const std::string& prompt, const std::string& completion,
                                           const std::string& source) const {
  std::vector<int32_t> p = encode(prompt, true);
  std::vector<int32_t> all = encode(prompt + completion, true);
  if (all.size() < p.size() || !std::equal(p.begin(), p.end(), all.begin()))
    usage_error(
        "{}: the prompt's tokens change when the completion follows it (a token spans "
        "the boundary); end the prompt with a separator such as a space or newline",
        source);
  if (tok_.eos_id() >= 0 && (all.empty() || all.back() != tok_.eos_id()))
    all.push_back(tok_.eos_id());
  SftSample s;
  s.source = source;
  s.loss_mask.assign(all.size(), 1);
  std::fill(s.loss_mask.begin(), s.loss_mask.begin() + static_cast<std::ptrdiff_t>(p.size()), 0);
  s.input_ids = std::move(all);
  if (s.supervised_tokens() == 0) usage_error("{}: the completion is empty", source);
  return s;
}

SftSample SftSampleBuilder::build(const ojson& record, const std::string& source) const {
  try {
    if (!record.is_object()) usage_error("{}: expected a JSON object", source);
    if (record.contains("messages")) {
      ojson tools = record.contains("tools") ? record["tools"] : ojson();
      return from_spans(render_messages(record["messages"], tools, source), source);
    }
    if (record.contains("prompt") && record.contains("completion")) {
      const ojson &p = record["prompt"], &c = record["completion"];
      if (p.is_string() && c.is_string())
        return from_text_pair(p.get<std::string>(), c.get<std::string>(), source);
      if (p.is_array() && c.is_array() && !c.empty()) {
        // Conversational pair: loss on everything the completion adds after the prompt's
        // generation prompt.
        ojson all = p;
        for (const auto& m : c) all.push_back(m);
        ChatOptions opts;
        opts.variables = variables_;
        if (record.contains("tools")) opts.tools = record["tools"];
        ChatOptions prompt_opts = opts;
        prompt_opts.add_generation_prompt = true;
        std::string head = template_.render(p, prompt_opts).text;
        Rendered r;
        r.text = template_.render(all, opts).text;
        if (!starts_with(r.text, head))
          usage_error(
              "{}: the rendered prompt (with its generation prompt) is not a prefix of "
              "the rendered prompt + completion",
              source);
        size_t end = r.text.size();
        while (end > head.size() && is_space(r.text[end - 1])) --end;
        if (end > head.size()) r.spans.emplace_back(head.size(), end);
        return from_spans(r, source);
      }
      usage_error(
          "{}: \"prompt\" and \"completion\" must both be strings or both lists of messages",
          source);
    }
    usage_error("{}: expected \"messages\" or \"prompt\" and \"completion\"", source);
  } catch (const Error& e) {
    throw Error(located(source, e.what()),
                e.kind() == ErrorKind::kUsage ? ErrorKind::kUsage : e.kind());
  }
}

std::vector<SftSample> read_sft_jsonl(const std::string& path, const SftSampleBuilder& builder,
                                      int64_t limit) {
  if (!path_exists(path)) usage_error("{}: file not found", path);
  std::vector<SftSample> out;
  if (limit == 0) return out;
  for_each_jsonl_record(path, [&](ojson record, const std::string& source) {
    out.push_back(builder.build(record, source));
    return limit < 0 || static_cast<int64_t>(out.size()) < limit;  // stop once `limit` are read
  });
  return out;
}

std::string inspect_sft(const std::string& path, const SftSampleBuilder& builder, int samples,
                        bool color) {
  std::vector<SftSample> all = read_sft_jsonl(path, builder);
  const std::string open = color ? "\x1b[32m" : "[[", close = color ? "\x1b[0m" : "]]";
  std::string out;
  int64_t tokens = 0, supervised = 0;
  size_t longest = 0;
  for (size_t i = 0; i < all.size(); ++i) {
    const SftSample& s = all[i];
    tokens += static_cast<int64_t>(s.input_ids.size());
    supervised += s.supervised_tokens();
    longest = std::max(longest, s.input_ids.size());
    if (static_cast<int>(i) >= samples) continue;
    out += fmt::format("--- sample {} ({}): {} tokens, {} supervised\n", i + 1, s.source,
                       s.input_ids.size(), s.supervised_tokens());
    bool in = false;
    for (size_t t = 0; t < s.input_ids.size(); ++t) {
      if (s.loss_mask[t] != in) out += (in = s.loss_mask[t]) ? open : close;
      out += piece_of(builder.tokenizer(), s.input_ids[t]);
    }
    if (in) out += close;
    out += "\n";
  }
  out += fmt::format("{}: {} samples, {} tokens, {} supervised ({:.1f}%), longest {} tokens\n",
                     path, all.size(), tokens, supervised,
                     tokens ? 100.0 * supervised / tokens : 0.0, longest);
  return out;
}

}  // namespace reef
