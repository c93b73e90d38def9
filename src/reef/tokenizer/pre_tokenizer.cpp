// Pre-tokenizer steps with HF `tokenizers` semantics (see pre_tokenizer.h): a Split regex
// partitions a piece into matches and gaps, then the behaviour decides how they group.
#include "reef/tokenizer/pre_tokenizer.h"

#include <nlohmann/json.hpp>

#include <algorithm>

#include "reef/base/error.h"

namespace reef {

const char* const kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

namespace {

std::string escape_literal(const std::string& s) {
  std::string out = "\\Q";
  for (size_t i = 0; i < s.size(); ++i) {
    if (s.compare(i, 2, "\\E") == 0) {
      out += "\\E\\\\E\\Q";
      ++i;
    } else {
      out += s[i];
    }
  }
  return out + "\\E";
}

SplitBehavior parse_behavior(const std::string& b, const std::string& file) {
  if (b == "Removed") return SplitBehavior::kRemoved;
  if (b == "Isolated") return SplitBehavior::kIsolated;
  if (b == "MergedWithPrevious") return SplitBehavior::kMergedWithPrevious;
  if (b == "MergedWithNext") return SplitBehavior::kMergedWithNext;
  if (b == "Contiguous") return SplitBehavior::kContiguous;
  fail("{}: pre_tokenizer Split behavior '{}' is not supported", file, b);
}

}  // namespace

PreTokenizer::PreTokenizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add_steps(spec, file);
}

void PreTokenizer::add_steps(const nlohmann::json& spec, const std::string& file) {
  std::string type = spec.value("type", "");
  if (type == "Sequence") {
    for (const auto& s : spec.at("pretokenizers")) add_steps(s, file);
    return;
  }
  if (has_byte_level_)
    fail("{}: pre_tokenizer '{}' after ByteLevel is not supported (ByteLevel must come last)",
         file, type);
  Step step;
  if (type == "ByteLevel") {
    step.byte_level = true;
    step.add_prefix_space = spec.value("add_prefix_space", false);
    if (spec.value("use_regex", true))
      step.regex = std::make_shared<Regex>(kGpt2Pattern, file + ": ByteLevel pre_tokenizer");
    has_byte_level_ = true;
  } else if (type == "Split") {
    const auto& pat = spec.at("pattern");
    std::string context = file + ": Split pre_tokenizer";
    if (pat.contains("Regex")) {
      step.regex = std::make_shared<Regex>(pat.at("Regex").get<std::string>(), context);
    } else if (pat.contains("String")) {
      step.regex = std::make_shared<Regex>(escape_literal(pat.at("String").get<std::string>()),
                                           context);
    } else {
      fail("{}: Split pre_tokenizer pattern must be {{\"Regex\": ...}} or {{\"String\": ...}}",
           file);
    }
    step.behavior = parse_behavior(spec.value("behavior", "Isolated"), file);
    step.invert = spec.value("invert", false);
  } else if (type == "Digits") {
    // Rust's char::is_numeric is General_Category N; one split per digit or per run.
    step.regex = std::make_shared<Regex>(R"(\p{N})", file + ": Digits pre_tokenizer");
    step.behavior = spec.value("individual_digits", false) ? SplitBehavior::kIsolated
                                                            : SplitBehavior::kContiguous;
  } else if (type == "Punctuation") {
    // HF's is_punc: ASCII punctuation or Unicode P*.
    step.regex = std::make_shared<Regex>(R"([\p{P}!-/:-@\[-`{-~])", file + ": Punctuation pre_tokenizer");
    step.behavior = parse_behavior(spec.value("behavior", "Isolated"), file);
  } else {
    fail("{}: pre_tokenizer type '{}' is not supported (supported: ByteLevel, Split, Digits, "
         "Punctuation, Sequence)",
         file, type);
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::apply(const Step& step, const std::string& piece,
                         std::vector<std::string>& out) {
  std::string text = piece;
  if (step.add_prefix_space && (text.empty() || text[0] != ' ')) text.insert(text.begin(), ' ');
  if (!step.regex) {
    if (!text.empty()) out.push_back(std::move(text));
    return;
  }
  // Matches and the gaps between them, in order, as HF's find_matches lays them out.
  std::vector<std::pair<size_t, size_t>> matches;
  step.regex->find_all(text, matches);
  struct Part {
    size_t b, e;
    bool is_match;
  };
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b != prev) parts.push_back({prev, b, step.invert});
    parts.push_back({b, e, !step.invert});
    prev = e;
  }
  if (prev != text.size()) parts.push_back({prev, text.size(), step.invert});

  std::vector<Part> grouped;
  switch (step.behavior) {
    case SplitBehavior::kIsolated:
      grouped = parts;
      break;
    case SplitBehavior::kRemoved:
      for (const auto& p : parts)
        if (!p.is_match) grouped.push_back(p);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !prev_match && !grouped.empty()) {
          grouped.back().e = p.e;
        } else {
          grouped.push_back(p);
        }
        prev_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !prev_match && !grouped.empty()) {
          grouped.back().b = it->b;
        } else {
          grouped.push_back(*it);
        }
        prev_match = it->is_match;
      }
      std::reverse(grouped.begin(), grouped.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const auto& p : parts) {
        if (p.is_match == prev_match && !grouped.empty()) {
          grouped.back().e = p.e;
        } else {
          grouped.push_back(p);
        }
        prev_match = p.is_match;
      }
      break;
    }
  }
  for (const auto& g : grouped)
    if (g.e > g.b) out.push_back(text.substr(g.b, g.e - g.b));
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& out) const {
  std::vector<std::string> cur, next;
  size_t i = 0;
  while (i < text.size()) {
    size_t n = valid_utf8_prefix(text.substr(i));
    if (n == 0) {
      n = invalid_utf8_run(text.substr(i));
      out.emplace_back(text.substr(i, n));
      i += n;
      continue;
    }
    cur.assign(1, std::string(text.substr(i, n)));
    for (const auto& step : steps_) {
      next.clear();
      for (const auto& piece : cur) apply(step, piece, next);
      cur.swap(next);
    }
    for (auto& p : cur) out.push_back(std::move(p));
    i += n;
  }
}

}  // namespace reef
