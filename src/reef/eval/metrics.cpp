// Implementation of eval/metrics.h.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "reef/eval/metrics.h"

#include <pcre2.h>

#include <cmath>

#include "reef/base/error.h"

namespace reef::eval {

PyRegex::PyRegex(const std::string& pattern, const std::string& where) : where_(where) {
  int err = 0;
  PCRE2_SIZE off = 0;
  code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF,
                        &err, &off, nullptr);
  if (!code_) {
    PCRE2_UCHAR buf[256];
    pcre2_get_error_message(err, buf, sizeof(buf));
    usage_error("{}: bad regex '{}' at offset {}: {}", where, pattern, off,
                reinterpret_cast<char*>(buf));
  }
  uint32_t n = 0;
  pcre2_pattern_info(static_cast<pcre2_code*>(code_), PCRE2_INFO_CAPTURECOUNT, &n);
  captures_ = static_cast<int>(n);
}

PyRegex::~PyRegex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

std::vector<std::vector<std::string>> PyRegex::findall(const std::string& text) const {
  std::vector<std::vector<std::string>> out;
  auto* code = static_cast<pcre2_code*>(code_);
  pcre2_match_data* md = pcre2_match_data_create_from_pattern(code, nullptr);
  size_t pos = 0;
  while (pos <= text.size()) {
    int rc = pcre2_match(code, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), pos, 0, md,
                         nullptr);
    if (rc < 0) break;
    PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
    std::vector<std::string> groups;
    auto group = [&](int g) {
      if (g >= rc || ov[2 * g] == PCRE2_UNSET) return std::string();
      return text.substr(ov[2 * g], ov[2 * g + 1] - ov[2 * g]);
    };
    if (captures_ == 0) groups.push_back(group(0));
    for (int g = 1; g <= captures_; ++g) groups.push_back(group(g));
    out.push_back(std::move(groups));
    if (ov[1] == ov[0]) {  // empty match: step one character
      pos = ov[1] + 1;
      while (pos < text.size() && (static_cast<unsigned char>(text[pos]) & 0xc0) == 0x80) ++pos;
    } else {
      pos = ov[1];
    }
  }
  pcre2_match_data_free(md);
  return out;
}

std::string PyRegex::sub(const std::string& text, const std::string& repl) const {
  std::string out(text.size() + 64, '\0');
  PCRE2_SIZE len = out.size();
  auto run = [&] {
    return pcre2_substitute(
        static_cast<pcre2_code*>(code_), reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), 0,
        PCRE2_SUBSTITUTE_GLOBAL | PCRE2_SUBSTITUTE_LITERAL | PCRE2_SUBSTITUTE_OVERFLOW_LENGTH,
        nullptr, nullptr, reinterpret_cast<PCRE2_SPTR>(repl.data()), repl.size(),
        reinterpret_cast<PCRE2_UCHAR*>(out.data()), &len);
  };
  int rc = run();
  if (rc == PCRE2_ERROR_NOMEMORY) {
    out.assign(len + 1, '\0');
    rc = run();
  }
  if (rc < 0) fail("{}: regex substitution failed ({})", where_, rc);
  out.resize(len);
  return out;
}

std::string apply_filter(const FilterPipeline& f, const std::string& generation) {
  std::string s = generation;
  for (const auto& step : f.steps) {
    if (step.function == "take_first") continue;  // one generation per document
    if (step.function == "regex") {
      PyRegex re(step.regex_pattern, "filter " + f.name);
      auto matches = re.findall(s);
      if (matches.empty()) {
        s = step.fallback;
        continue;
      }
      int64_t k = step.group_select, n = static_cast<int64_t>(matches.size());
      if (k < 0) k += n;
      if (k < 0 || k >= n) {
        s = step.fallback;  // Python would raise IndexError; a fallback is kinder
        continue;
      }
      const auto& groups = matches[static_cast<size_t>(k)];
      std::string m;
      if (re.capture_count() > 1) {  // a tuple: its first non-empty group
        m = step.fallback;
        for (const auto& g : groups)
          if (!g.empty()) {
            m = g;
            break;
          }
      } else {
        m = groups[0];
      }
      size_t b = m.find_first_not_of(" \t\n\r\f\v"), e = m.find_last_not_of(" \t\n\r\f\v");
      s = b == std::string::npos ? "" : m.substr(b, e - b + 1);
    } else if (step.function == "lowercase" || step.function == "uppercase") {
      for (auto& c : s)
        c = static_cast<char>(step.function == "lowercase"
                                  ? std::tolower(static_cast<unsigned char>(c))
                                  : std::toupper(static_cast<unsigned char>(c)));
    } else if (step.function == "remove_whitespace" ||
               step.function == "strip") {  // WhitespaceFilter
      size_t b = s.find_first_not_of(" \t\n\r\f\v"), e = s.find_last_not_of(" \t\n\r\f\v");
      s = b == std::string::npos ? "" : s.substr(b, e - b + 1);
    }
  }
  return s;
}

double exact_match(const MetricConfig& m, const std::string& prediction,
                   const std::string& reference) {
  std::string p = prediction, r = reference;
  for (const auto& pattern : m.regexes_to_ignore) {
    PyRegex re(pattern, "exact_match regexes_to_ignore");
    p = re.sub(p, "");
    r = re.sub(r, "");
  }
  auto transform = [&](std::string& s) {
    std::string o;
    for (char c : s) {
      unsigned char u = static_cast<unsigned char>(c);
      if (m.ignore_punctuation && u < 128 && std::ispunct(u)) continue;
      if (m.ignore_numbers && u < 128 && std::isdigit(u)) continue;
      o += m.ignore_case ? static_cast<char>(std::tolower(u)) : c;
    }
    s = o;
  };
  transform(p);
  transform(r);
  return p == r ? 1.0 : 0.0;
}

int64_t argmax(const std::vector<double>& v) {
  int64_t best = 0;
  for (size_t i = 1; i < v.size(); ++i)
    if (v[i] > v[static_cast<size_t>(best)] ||
        (std::isnan(v[i]) && !std::isnan(v[static_cast<size_t>(best)])))
      best = static_cast<int64_t>(i);
  return best;
}

int64_t count_chars(const std::string& s) {
  int64_t n = 0;
  for (char c : s)
    if ((static_cast<unsigned char>(c) & 0xc0) != 0x80) ++n;
  return n;
}

int64_t count_words(const std::string& s) {
  // re.split(r"\s+", s): one more piece than there are whitespace runs.
  int64_t runs = 0;
  bool in_ws = false;
  for (char c : s) {
    bool ws = c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
    if (ws && !in_ws) ++runs;
    in_ws = ws;
  }
  return runs + 1;
}

Aggregate aggregate_mean(const std::vector<double>& xs) {
  Aggregate a;
  if (xs.empty()) return a;
  double sum = 0;
  for (double x : xs) sum += x;
  a.value = sum / static_cast<double>(xs.size());
  if (xs.size() > 1) {
    double ss = 0;
    for (double x : xs) ss += (x - a.value) * (x - a.value);
    a.stderr_ = std::sqrt(ss / static_cast<double>(xs.size() - 1)) /
                std::sqrt(static_cast<double>(xs.size()));
  }
  return a;
}

double weighted_perplexity(const std::vector<double>& ll, const std::vector<double>& units) {
  double a = 0, b = 0;
  for (size_t i = 0; i < ll.size(); ++i) {
    a += ll[i];
    b += units[i];
  }
  return std::exp(-a / b);
}

double bits_per_byte(const std::vector<double>& ll, const std::vector<double>& bytes) {
  double a = 0, b = 0;
  for (size_t i = 0; i < ll.size(); ++i) {
    a += ll[i];
    b += bytes[i];
  }
  return -(a / b) / std::log(2.0);
}

double perplexity(const std::vector<double>& ll) {
  double s = 0;
  for (double x : ll) s += x;
  return std::exp(-s / static_cast<double>(ll.size()));
}

}  // namespace reef::eval
