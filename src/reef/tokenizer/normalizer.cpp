// Normalizer steps with HF `tokenizers` semantics (see normalizer.h). Unicode normalization is
// ICU's Normalizer2 on UTF-8; Lowercase is Rust's char::to_lowercase (the simple lowercase
// mapping, except U+0130 which lowers to "i\u0307"), applied character by character.
#include "reef/tokenizer/normalizer.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/stringpiece.h>
#include <unicode/uchar.h>

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/tokenizer/regex.h"

namespace reef {

uint32_t next_code_point(std::string_view s, size_t& i) {
  size_t n = utf8_char_len(s, i);
  if (n == 0) {
    ++i;
    return kInvalidCodePoint;
  }
  unsigned char c = s[i];
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

void append_utf8(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | (cp >> 6));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | (cp >> 12));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (cp >> 18));
    out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

bool is_white_space(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F ||
         c == 0x3000;
}

namespace {

bool is_ascii(const std::string& s) {
  for (char c : s)
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  return true;
}

// ICU normalization of each valid UTF-8 run; invalid runs are copied unchanged.
void unicode_normalize(const icu::Normalizer2* norm, std::string& text) {
  if (is_ascii(text)) return;  // ASCII is invariant under all four forms
  UErrorCode st = U_ZERO_ERROR;
  if (valid_utf8_prefix(text) == text.size() && norm->isNormalizedUTF8(text, st) && U_SUCCESS(st))
    return;
  std::string out;
  out.reserve(text.size() + text.size() / 4);
  std::string_view v(text);
  for (size_t i = 0; i < v.size();) {
    size_t n = valid_utf8_prefix(v.substr(i));
    if (n == 0) {
      n = invalid_utf8_run(v.substr(i));
      out.append(v.substr(i, n));
    } else {
      st = U_ZERO_ERROR;
      icu::StringByteSink<std::string> sink(&out);
      norm->normalizeUTF8(0, icu::StringPiece(v.data() + i, static_cast<int32_t>(n)), sink, nullptr,
                          st);
      if (U_FAILURE(st)) fail("Unicode normalization failed: {}", u_errorName(st));
    }
    i += n;
  }
  text.swap(out);
}

void lowercase(std::string& text) {
  std::string out;
  out.reserve(text.size());
  std::string_view v(text);
  for (size_t i = 0; i < v.size();) {
    unsigned char c = v[i];
    if (c < 0x80) {
      out += static_cast<char>(c >= 'A' && c <= 'Z' ? c + 32 : c);
      ++i;
      continue;
    }
    size_t start = i;
    uint32_t cp = next_code_point(v, i);
    if (cp == kInvalidCodePoint) {
      out.append(v.substr(start, i - start));
    } else if (cp == 0x130) {
      out += "i\xCC\x87";  // LATIN CAPITAL LETTER I WITH DOT ABOVE: full mapping
    } else {
      append_utf8(static_cast<uint32_t>(u_tolower(static_cast<UChar32>(cp))), out);
    }
  }
  text.swap(out);
}

void strip_accents(std::string& text) {
  std::string out;
  out.reserve(text.size());
  std::string_view v(text);
  for (size_t i = 0; i < v.size();) {
    size_t start = i;
    uint32_t cp = next_code_point(v, i);
    if (cp != kInvalidCodePoint && (U_GET_GC_MASK(static_cast<UChar32>(cp)) & U_GC_M_MASK))
      continue;
    out.append(v.substr(start, i - start));
  }
  text.swap(out);
}

void strip(std::string& text, bool left, bool right) {
  std::string_view v(text);
  size_t begin = 0, end = v.size();
  if (left) {
    size_t i = 0;
    while (i < v.size()) {
      size_t j = i;
      if (!is_white_space(next_code_point(v, j))) break;
      i = j;
    }
    begin = i;
  }
  if (right) {
    size_t i = begin, last = begin;  // end of the last non-space character
    while (i < v.size()) {
      if (!is_white_space(next_code_point(v, i))) last = i;
    }
    end = last;
  }
  text = std::string(v.substr(begin, end - begin));
}

const icu::Normalizer2* icu_instance(const std::string& type, const std::string& file) {
  UErrorCode st = U_ZERO_ERROR;
  const icu::Normalizer2* n = type == "NFC"    ? icu::Normalizer2::getNFCInstance(st)
                              : type == "NFD"  ? icu::Normalizer2::getNFDInstance(st)
                              : type == "NFKC" ? icu::Normalizer2::getNFKCInstance(st)
                                               : icu::Normalizer2::getNFKDInstance(st);
  if (U_FAILURE(st) || !n) fail("{}: ICU has no {} normalizer: {}", file, type, u_errorName(st));
  return n;
}

void replace_literal_all(std::string& text, const std::string& from, const std::string& to) {
  if (from.empty() || text.find(from) == std::string::npos) return;
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  for (size_t hit; (hit = text.find(from, pos)) != std::string::npos; pos = hit + from.size())
    out.append(text, pos, hit - pos).append(to);
  out.append(text, pos, std::string::npos);
  text.swap(out);
}

void replace_regex(std::string& text, const Regex& re, const std::string& to) {
  std::string out;
  out.reserve(text.size());
  std::string_view v(text);
  std::vector<std::pair<size_t, size_t>> matches;
  for (size_t i = 0; i < v.size();) {
    size_t n = valid_utf8_prefix(v.substr(i));
    if (n == 0) {
      n = invalid_utf8_run(v.substr(i));
      out.append(v.substr(i, n));
    } else {
      matches.clear();
      std::string_view run = v.substr(i, n);
      re.find_all(run, matches);
      size_t prev = 0;
      for (auto [b, e] : matches) {
        out.append(run.substr(prev, b - prev)).append(to);
        prev = e;
      }
      out.append(run.substr(prev));
    }
    i += n;
  }
  text.swap(out);
}

}  // namespace

void parse_replace_spec(const nlohmann::json& spec, const std::string& what, std::string* from,
                        std::shared_ptr<Regex>* regex, std::string* to) {
  const auto& pat = spec.at("pattern");
  *to = spec.at("content").get<std::string>();
  if (pat.contains("String")) {
    *from = pat.at("String").get<std::string>();
  } else if (pat.contains("Regex")) {
    *regex = std::make_shared<Regex>(pat.at("Regex").get<std::string>(), what);
  } else {
    fail("{}: the pattern must be {{\"String\": ...}} or {{\"Regex\": ...}}", what);
  }
}

void apply_replace(std::string& text, const std::string& from, const Regex* regex,
                   const std::string& to) {
  if (regex)
    replace_regex(text, *regex, to);
  else
    replace_literal_all(text, from, to);
}

Normalizer::Normalizer(const nlohmann::json& spec, const std::string& file) {
  if (!spec.is_null()) add_steps(spec, file);
}

Normalizer::~Normalizer() = default;

void Normalizer::add_steps(const nlohmann::json& spec, const std::string& file) {
  std::string type = spec.value("type", "");
  Step step;
  if (type == "Sequence") {
    for (const auto& s : spec.at("normalizers")) add_steps(s, file);
    return;
  } else if (type == "NFC" || type == "NFD" || type == "NFKC" || type == "NFKD") {
    step.kind = Kind::kUnicode;
    step.icu = icu_instance(type, file);
  } else if (type == "Lowercase") {
    step.kind = Kind::kLowercase;
  } else if (type == "StripAccents") {
    step.kind = Kind::kStripAccents;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.left = spec.value("strip_left", false);
    step.right = spec.value("strip_right", false);
  } else if (type == "Prepend") {
    step.kind = Kind::kPrepend;
    step.a = spec.at("prepend").get<std::string>();
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    parse_replace_spec(spec, file + ": Replace normalizer", &step.a, &step.regex, &step.b);
  } else {
    fail(
        "{}: normalizer type '{}' is not supported (supported: NFC, NFD, NFKC, NFKD, Lowercase, "
        "StripAccents, Strip, Prepend, Replace, Sequence)",
        file, type);
  }
  steps_.push_back(std::move(step));
}

void Normalizer::apply(const Step& step, std::string& text) {
  switch (step.kind) {
    case Kind::kUnicode:
      unicode_normalize(static_cast<const icu::Normalizer2*>(step.icu), text);
      break;
    case Kind::kLowercase:
      lowercase(text);
      break;
    case Kind::kStripAccents:
      strip_accents(text);
      break;
    case Kind::kStrip:
      strip(text, step.left, step.right);
      break;
    case Kind::kPrepend:
      if (!text.empty()) text.insert(0, step.a);
      break;
    case Kind::kReplace:
      apply_replace(text, step.a, step.regex.get(), step.b);
      break;
  }
}

void Normalizer::normalize(std::string& text) const {
  for (const auto& step : steps_) apply(step, text);
}

}  // namespace reef
