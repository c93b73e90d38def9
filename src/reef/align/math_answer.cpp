// Implementation of align/math_answer.h.
#include "reef/align/math_answer.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <regex>
#include <string_view>

#include "reef/base/strings.h"

namespace reef {
namespace {

std::string trim(std::string_view s) {
  const char* ws = " \t\n\r\f\v";
  const size_t b = s.find_first_not_of(ws);
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(ws) - b + 1));
}

void erase_all(std::string& s, const std::string& what) {
  for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at))
    s.erase(at, what.size());
}

// The spacing and sizing macros and the dollars that say nothing about the value.
std::string strip_decoration(std::string s) {
  for (const char* m : {"\\left", "\\right", "\\!", "\\,", "\\;", "\\:", "\\ ", "\\$", "$"})
    erase_all(s, m);
  std::string out;
  for (char c : s)
    if (!std::isspace(static_cast<unsigned char>(c))) out += c;
  return out;
}

// A plain decimal (no sign, no fraction): "12", "0.5", ".5", "1,234.5", "1e-3".
std::optional<double> parse_decimal(std::string s) {
  static const std::regex grouped(R"(\d{1,3}(,\d{3})+(\.\d*)?)");
  static const std::regex plain(R"((\d+\.?\d*|\.\d+)([eE][+-]?\d+)?)");
  if (s.find(',') != std::string::npos) {
    if (!std::regex_match(s, grouped)) return std::nullopt;
    erase_all(s, ",");
  }
  if (!std::regex_match(s, plain)) return std::nullopt;
  return std::strtod(s.c_str(), nullptr);
}

std::optional<double> ratio(const std::optional<double>& a, const std::optional<double>& b) {
  if (!a || !b || *b == 0) return std::nullopt;
  return *a / *b;
}

}  // namespace

std::string extract_math_answer(const std::string& text) {
  // The last \boxed{...} whose braces close (a cut-off one does not count).
  std::string boxed;
  bool found = false;
  const std::string open = "\\boxed{";
  for (size_t at = text.find(open); at != std::string::npos; at = text.find(open, at + 1)) {
    int depth = 1;
    size_t i = at + open.size();
    for (; i < text.size() && depth > 0; ++i) depth += text[i] == '{' ? 1 : text[i] == '}' ? -1 : 0;
    if (depth == 0) {
      boxed = text.substr(at + open.size(), i - 1 - (at + open.size()));
      found = true;
    }
  }
  if (found) return trim(boxed);

  const size_t hashes = text.rfind("####");
  if (hashes != std::string::npos) {
    std::string rest = trim(std::string_view(text).substr(hashes + 4));
    rest = trim(rest.substr(0, rest.find('\n')));
    if (!rest.empty()) return rest;
  }

  static const std::regex number(
      R"(-?(\d{1,3}(,\d{3})+(?!\d)(\.\d+)?|\d+(\.\d+)?|\.\d+)(/\d+(\.\d+)?)?)");
  std::string last;
  for (auto it = std::sregex_iterator(text.begin(), text.end(), number);
       it != std::sregex_iterator(); ++it) {
    std::string m = it->str();
    const auto pos = static_cast<size_t>(it->position());
    // "x-3" or "5-3": a hyphen after a letter or digit is not a minus sign.
    if (m[0] == '-' && pos > 0 && std::isalnum(static_cast<unsigned char>(text[pos - 1])))
      m.erase(0, 1);
    last = m;
  }
  return last;
}

std::optional<double> parse_math_number(const std::string& input) {
  std::string s = strip_decoration(input);
  erase_all(s, "{,}");  // LaTeX's thousands separator 1{,}234
  // Trailing "." (end of a sentence), "%" and "\%" (the percentage's number), "$" (already
  // gone), in any order.
  for (bool changed = true; changed && !s.empty();) {
    changed = false;
    if (ends_with(s, "\\%")) s.resize(s.size() - 2), changed = true;
    if (!s.empty() && (s.back() == '%' || s.back() == '.')) s.pop_back(), changed = true;
  }
  while (s.size() >= 2 && s.front() == '{' && s.back() == '}') s = s.substr(1, s.size() - 2);
  double sign = 1;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) {
    sign = s[0] == '-' ? -1 : 1;
    s.erase(0, 1);
  }
  if (s.empty()) return std::nullopt;
  std::optional<double> value;
  static const std::regex frac(R"(\\[dt]?frac\{([^{}]*)\}\{([^{}]*)\})");
  static const std::regex frac_digits(R"(\\[dt]?frac(\d)(\d))");
  std::smatch m;
  if (std::regex_match(s, m, frac) || std::regex_match(s, m, frac_digits)) {
    std::string num = m[1].str();
    double num_sign = 1;
    if (!num.empty() && num[0] == '-') num_sign = -1, num.erase(0, 1);
    value = ratio(parse_decimal(num), parse_decimal(m[2].str()));
    if (value) *value *= num_sign;
  } else if (s.find('/') != std::string::npos) {
    const size_t slash = s.find('/');
    value = ratio(parse_decimal(s.substr(0, slash)), parse_decimal(s.substr(slash + 1)));
  } else {
    value = parse_decimal(s);
  }
  if (!value || !std::isfinite(*value)) return std::nullopt;
  return sign * *value;
}

std::string normalize_math_answer(const std::string& input) {
  std::string s = ascii_lower(strip_decoration(input));
  while (!s.empty() && s.back() == '.') s.pop_back();
  return s;
}

bool math_answers_equal(const std::string& answer, const std::string& expected) {
  const auto a = parse_math_number(answer);
  const auto b = parse_math_number(expected);
  if (a && b) return std::fabs(*a - *b) <= 1e-6 * std::max(1.0, std::fabs(*b));
  return normalize_math_answer(answer) == normalize_math_answer(expected);
}

}  // namespace reef
