// Preference pairs (data/preference.h): TRL's formats and DPOTrainer's tokenization, checked row
// by row with errors that name the field.
#include "reef/data/preference.h"

#include <algorithm>
#include <cmath>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/json_file.h"
#include "reef/base/strings.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

// "a string", "a list of messages" or what the value is instead.
bool is_messages(const ojson& v) {
  if (!v.is_array()) return false;
  for (const auto& m : v)
    if (!m.is_object() || !m.contains("role") || !m["role"].is_string()) return false;
  return true;
}

std::string describe(const ojson& v) {
  if (v.is_string()) return "a string";
  if (v.is_array()) return v.empty() ? "an empty list" : "a list that is not of messages";
  if (v.is_object()) return "an object";
  if (v.is_null()) return "null";
  return "a " + std::string(v.type_name());
}

[[noreturn]] void bad_field(const std::string& source, const char* field, const std::string& what) {
  usage_error("{}: field \"{}\": {}", source, field, what);
}

// trl.extract_prompt on strings: the shared prefix (by character), moved back over one space.
size_t shared_text_prefix(const std::string& a, const std::string& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  if (i == n) return n == 0 ? 0 : n - 1;  // trl: the loop ends on its last index
  while (i > 0 && (static_cast<unsigned char>(a[i]) & 0xC0) == 0x80) --i;  // whole characters
  if (i > 0 && a[i - 1] == ' ') --i;
  return i;
}

// trl.extract_prompt on conversations: the shared leading messages.
size_t shared_message_prefix(const ojson& a, const ojson& b) {
  const size_t n = std::min(a.size(), b.size());
  size_t i = 0;
  while (i < n && a[i] == b[i]) ++i;
  if (i == n) return n == 0 ? 0 : n - 1;
  return i;
}

size_t common_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  size_t i = 0;
  while (i < a.size() && i < b.size() && a[i] == b[i]) ++i;
  return i;
}

std::string piece_of(const Tokenizer& tok, int32_t id) {
  if (auto* hf = dynamic_cast<const HfTokenizer*>(&tok)) return hf->token_text(id);
  return tok.decode({id}, true);
}

}  // namespace

PreferencePairBuilder::PreferencePairBuilder(const Tokenizer& tokenizer, ChatTemplate chat_template,
                                             ojson variables)
    : tok_(tokenizer), template_(std::move(chat_template)), variables_(std::move(variables)) {}

std::vector<int32_t> PreferencePairBuilder::encode(const std::string& text,
                                                   bool add_special) const {
  return encode_like_transformers(tok_, text, add_special);
}

PreferencePair PreferencePairBuilder::build(const ojson& record, const std::string& source) const {
  if (!record.is_object())
    usage_error("{}: expected a JSON object with chosen and rejected", source);
  for (const char* f : {"chosen", "rejected"})
    if (!record.contains(f))
      bad_field(source, f, "missing (a preference row has \"chosen\" and \"rejected\")");
  ojson chosen = record["chosen"], rejected = record["rejected"], prompt;
  const bool conversational = is_messages(chosen);
  for (const auto* f : {"chosen", "rejected"}) {
    const ojson& v = record[f];
    if (!v.is_string() && !is_messages(v))
      bad_field(
          source, f,
          "expected a string or a list of messages ({\"role\": ..., \"content\": ...}), got " +
              describe(v));
    if (conversational != is_messages(v))
      bad_field(source, f,
                fmt::format("is {} but \"chosen\" is {}: the fields of a row are all strings or "
                            "all lists of messages",
                            describe(v), describe(chosen)));
  }
  if (record.contains("prompt")) {
    prompt = record["prompt"];
    if (conversational ? !is_messages(prompt) : !prompt.is_string())
      bad_field(source, "prompt",
                fmt::format("expected {} like \"chosen\", got {}",
                            conversational ? "a list of messages" : "a string", describe(prompt)));
  } else if (conversational) {  // implicit prompt: the shared leading messages
    const size_t n = shared_message_prefix(chosen, rejected);
    prompt = ojson(chosen.begin(), chosen.begin() + static_cast<std::ptrdiff_t>(n));
    chosen = ojson(chosen.begin() + static_cast<std::ptrdiff_t>(n), chosen.end());
    rejected = ojson(rejected.begin() + static_cast<std::ptrdiff_t>(n), rejected.end());
  } else {  // implicit prompt: the shared leading text
    const std::string c = chosen.get<std::string>(), r = rejected.get<std::string>();
    const size_t n = shared_text_prefix(c, r);
    prompt = c.substr(0, n);
    chosen = c.substr(n);
    rejected = r.substr(n);
  }

  std::vector<int32_t> p, pc, pr;
  if (conversational) {
    ChatOptions opts;
    opts.variables = variables_;
    if (record.contains("chat_template_kwargs")) {
      const ojson& kw = record["chat_template_kwargs"];
      if (!kw.is_object())
        bad_field(source, "chat_template_kwargs", "expected an object, got " + describe(kw));
      for (const auto& [k, v] : kw.items()) opts.variables[k] = v;
    }
    if (record.contains("tools") && !record["tools"].is_null()) {
      ojson tools = record["tools"];
      if (tools.is_string()) {  // trl accepts the list as a JSON string too
        try {
          tools = ojson::parse(tools.get<std::string>());
        } catch (const nlohmann::json::exception&) {
          bad_field(source, "tools", "a string that is not JSON");
        }
      }
      if (!tools.is_array()) bad_field(source, "tools", "expected a list, got " + describe(tools));
      opts.tools = tools;
    }
    auto render = [&](const ojson& messages, bool generation_prompt, const char* field) {
      ChatOptions o = opts;
      o.add_generation_prompt = generation_prompt;
      try {
        return template_.render(messages, o).text;
      } catch (const Error& e) {
        bad_field(source, field, fmt::format("the chat template refused it: {}", e.what()));
      }
    };
    ojson all_c = prompt, all_r = prompt;
    for (const auto& m : chosen) all_c.push_back(m);
    for (const auto& m : rejected) all_r.push_back(m);
    p = encode(render(prompt, true, "prompt"), false);
    pc = encode(render(all_c, false, "chosen"), false);
    pr = encode(render(all_r, false, "rejected"), false);
  } else {
    std::string c = chosen.get<std::string>(), r = rejected.get<std::string>();
    const auto* hf = dynamic_cast<const HfTokenizer*>(&tok_);
    const std::string eos = hf && tok_.eos_id() >= 0 ? hf->token_text(tok_.eos_id()) : "";
    if (!eos.empty()) {  // trl appends the eos text, so it tokenizes as the eos id
      if (!ends_with(c, eos)) c += eos;
      if (!ends_with(r, eos)) r += eos;
    }
    const std::string ps = prompt.get<std::string>();
    p = encode(ps, true);
    pc = encode(ps + c, true);
    pr = encode(ps + r, true);
    if (eos.empty() && tok_.eos_id() >= 0) {
      for (auto* ids : {&pc, &pr})
        if (ids->empty() || ids->back() != tok_.eos_id()) ids->push_back(tok_.eos_id());
    }
  }
  const size_t n = std::min({common_prefix(p, pc), common_prefix(p, pr), p.size()});
  PreferencePair out;
  out.source = source;
  out.prompt.assign(p.begin(), p.begin() + static_cast<std::ptrdiff_t>(n));
  out.chosen.assign(pc.begin() + static_cast<std::ptrdiff_t>(n), pc.end());
  out.rejected.assign(pr.begin() + static_cast<std::ptrdiff_t>(n), pr.end());
  if (record.contains("margin") && !record["margin"].is_null()) {
    const ojson& m = record["margin"];
    if (!m.is_number()) bad_field(source, "margin", "expected a number, got " + describe(m));
    out.margin = m.get<double>();
    if (!std::isfinite(out.margin)) bad_field(source, "margin", "expected a finite number");
  }
  if (out.chosen.empty()) bad_field(source, "chosen", "the answer has no token after the prompt");
  if (out.rejected.empty())
    bad_field(source, "rejected", "the answer has no token after the prompt");
  return out;
}

PreferenceFile read_preference_jsonl(const std::string& path, const PreferencePairBuilder& builder,
                                     bool skip_bad_rows, int64_t limit) {
  if (!path_exists(path)) usage_error("{}: file not found", path);
  PreferenceFile out;
  if (limit == 0) return out;
  auto skip = [&](const std::string& why) {
    if (out.skipped++ == 0) out.first_skip_reason = why;
  };
  std::function<void(const std::string&)> on_malformed;
  if (skip_bad_rows) on_malformed = skip;
  for_each_jsonl_record(
      path,
      [&](ojson record, const std::string& source) {
        try {
          out.pairs.push_back(builder.build(record, source));
        } catch (const Error& e) {
          if (!skip_bad_rows || e.kind() != ErrorKind::kUsage) throw;
          skip(e.what());
        }
        return limit < 0 || static_cast<int64_t>(out.pairs.size()) < limit;
      },
      on_malformed);
  return out;
}

std::string inspect_pairs(const std::string& path, const PreferencePairBuilder& builder,
                          int samples, bool color, bool skip_bad_rows) {
  PreferenceFile file = read_preference_jsonl(path, builder, skip_bad_rows);
  const std::string open = color ? "\x1b[32m" : "[[", close = color ? "\x1b[0m" : "]]";
  const Tokenizer& tok = builder.tokenizer();
  auto text = [&](const std::vector<int32_t>& ids) {
    std::string s;
    for (int32_t id : ids) s += piece_of(tok, id);
    return s;
  };
  std::string out;
  int64_t prompt_tokens = 0, chosen_tokens = 0, rejected_tokens = 0;
  size_t longest = 0;
  for (size_t i = 0; i < file.pairs.size(); ++i) {
    const PreferencePair& p = file.pairs[i];
    prompt_tokens += static_cast<int64_t>(p.prompt.size());
    chosen_tokens += static_cast<int64_t>(p.chosen.size());
    rejected_tokens += static_cast<int64_t>(p.rejected.size());
    longest = std::max(longest, p.prompt.size() + std::max(p.chosen.size(), p.rejected.size()));
    if (static_cast<int>(i) >= samples) continue;
    out += fmt::format("--- pair {} ({}): prompt {} tokens, chosen {}, rejected {}\n", i + 1,
                       p.source, p.prompt.size(), p.chosen.size(), p.rejected.size());
    out += "chosen:   " + text(p.prompt) + open + text(p.chosen) + close + "\n";
    out += "rejected: " + text(p.prompt) + open + text(p.rejected) + close + "\n";
  }
  const double n = std::max<double>(1.0, static_cast<double>(file.pairs.size()));
  out += fmt::format(
      "{}: {} pairs{}, mean tokens: prompt {:.1f}, chosen {:.1f}, rejected {:.1f}; longest "
      "sequence {} tokens\n",
      path, file.pairs.size(),
      file.skipped ? fmt::format(" ({} bad rows skipped)", file.skipped) : "",
      static_cast<double>(prompt_tokens) / n, static_cast<double>(chosen_tokens) / n,
      static_cast<double>(rejected_tokens) / n, longest);
  return out;
}

}  // namespace reef
