// Pre-tokenizer steps with HF `tokenizers` semantics (see pre_tokenizer.h): a Split regex
// partitions a piece into matches and gaps, then the behaviour decides how they group; Metaspace
// replaces spaces with "▁", prepends one, and splits before each.
#include "reef/tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <nlohmann/json.hpp>

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

struct Part {
  size_t b, e;
  bool is_match;
};

// Lays out the matches of a piece of length `n` and the gaps between them, as HF's
// find_matches does, then groups them by `behavior`; appends the groups to `out`.
void group_parts(size_t n, const std::vector<std::pair<size_t, size_t>>& matches,
                 SplitBehavior behavior, bool invert, std::vector<Part>& out) {
  std::vector<Part> parts;
  size_t prev = 0;
  for (auto [b, e] : matches) {
    if (b != prev) parts.push_back({prev, b, invert});
    parts.push_back({b, e, !invert});
    prev = e;
  }
  if (prev != n) parts.push_back({prev, n, invert});

  size_t first = out.size();
  switch (behavior) {
    case SplitBehavior::kIsolated:
      out.insert(out.end(), parts.begin(), parts.end());
      break;
    case SplitBehavior::kRemoved:
      for (const auto& p : parts)
        if (!p.is_match) out.push_back(p);
      break;
    case SplitBehavior::kMergedWithPrevious: {
      bool prev_match = false;
      for (const auto& p : parts) {
        if (p.is_match && !prev_match && out.size() > first) {
          out.back().e = p.e;
        } else {
          out.push_back(p);
        }
        prev_match = p.is_match;
      }
      break;
    }
    case SplitBehavior::kMergedWithNext: {
      bool prev_match = false;
      for (auto it = parts.rbegin(); it != parts.rend(); ++it) {
        if (it->is_match && !prev_match && out.size() > first) {
          out.back().b = it->b;
        } else {
          out.push_back(*it);
        }
        prev_match = it->is_match;
      }
      std::reverse(out.begin() + static_cast<std::ptrdiff_t>(first), out.end());
      break;
    }
    case SplitBehavior::kContiguous: {
      bool prev_match = false;
      for (const auto& p : parts) {
        if (p.is_match == prev_match && out.size() > first) {
          out.back().e = p.e;
        } else {
          out.push_back(p);
        }
        prev_match = p.is_match;
      }
      break;
    }
  }
}

}  // namespace

std::string metaspace_prepend_scheme(const nlohmann::json& spec, const std::string& file) {
  std::string scheme;
  if (spec.contains("prepend_scheme") && !spec["prepend_scheme"].is_null()) {
    scheme = spec["prepend_scheme"].get<std::string>();
  } else {
    scheme = spec.value("add_prefix_space", true) ? "always" : "never";
  }
  if (scheme != "always" && scheme != "first" && scheme != "never")
    fail("{}: Metaspace prepend_scheme '{}' is not supported (always, first, never)", file, scheme);
  return scheme;
}

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
    fail("{}: pre_tokenizer '{}' after ByteLevel is not supported (ByteLevel must come last)", file,
         type);
  Step step;
  if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
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
      step.regex =
          std::make_shared<Regex>(escape_literal(pat.at("String").get<std::string>()), context);
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
    step.regex =
        std::make_shared<Regex>(R"([\p{P}!-/:-@\[-`{-~])", file + ": Punctuation pre_tokenizer");
    step.behavior = parse_behavior(spec.value("behavior", "Isolated"), file);
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.replacement = spec.value("replacement", "\xE2\x96\x81");
    if (step.replacement.empty()) fail("{}: Metaspace replacement is empty", file);
    step.prepend_scheme = metaspace_prepend_scheme(spec, file);
    step.metaspace_split = spec.value("split", true);
  } else {
    fail(
        "{}: pre_tokenizer type '{}' is not supported (supported: ByteLevel, Split, Metaspace, "
        "Digits, Punctuation, Sequence)",
        file, type);
  }
  steps_.push_back(std::move(step));
}

void PreTokenizer::apply(const Step& step, Piece& piece, std::vector<Piece>& out) {
  if (piece.opaque) {
    out.push_back(std::move(piece));
    return;
  }
  std::string& text = piece.text;
  std::vector<std::pair<size_t, size_t>> matches;
  std::vector<Part> groups;
  auto emit = [&](size_t offset) {
    for (const auto& g : groups)
      if (g.e > g.b)
        out.push_back(
            {text.substr(offset + g.b, g.e - g.b), piece.at_start && offset + g.b == 0, false});
    groups.clear();
  };
  if (step.kind == Kind::kMetaspace) {
    const std::string& rep = step.replacement;
    for (size_t pos = 0; (pos = text.find(' ', pos)) != std::string::npos; pos += rep.size())
      text.replace(pos, 1, rep);
    bool prepend =
        step.prepend_scheme == "always" || (step.prepend_scheme == "first" && piece.at_start);
    if (prepend && text.compare(0, rep.size(), rep) != 0) text.insert(0, rep);
    if (!step.metaspace_split) {
      if (!text.empty()) out.push_back(std::move(piece));
      return;
    }
    for (size_t pos = 0; (pos = text.find(rep, pos)) != std::string::npos; pos += rep.size())
      matches.emplace_back(pos, pos + rep.size());
    group_parts(text.size(), matches, SplitBehavior::kMergedWithNext, false, groups);
    emit(0);
    return;
  }
  if (step.add_prefix_space && (text.empty() || text[0] != ' ')) text.insert(text.begin(), ' ');
  if (!step.regex) {
    if (!text.empty()) out.push_back(std::move(piece));
    return;
  }
  // The regex runs on each valid UTF-8 run; invalid runs become opaque pieces.
  std::string_view v(text);
  for (size_t i = 0; i < v.size();) {
    size_t n = valid_utf8_prefix(v.substr(i));
    if (n == 0) {
      n = invalid_utf8_run(v.substr(i));
      out.push_back({text.substr(i, n), piece.at_start && i == 0, true});
    } else {
      matches.clear();
      step.regex->find_all(v.substr(i, n), matches);
      group_parts(n, matches, step.behavior, step.invert, groups);
      emit(i);
    }
    i += n;
  }
}

void PreTokenizer::split(std::string_view text, std::vector<std::string>& out,
                         bool at_start) const {
  thread_local std::vector<Piece> cur, next;
  cur.clear();
  cur.push_back({std::string(text), at_start, false});
  for (const auto& step : steps_) {
    next.clear();
    for (auto& piece : cur) apply(step, piece, next);
    cur.swap(next);
  }
  for (auto& p : cur)
    if (!p.text.empty()) out.push_back(std::move(p.text));
}

}  // namespace reef
