// Implementation of the model-independent helpers in eval/language_model.h.
#include "reef/eval/language_model.h"

#include <algorithm>

namespace reef::eval {

std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> rolling_windows(
    const std::vector<int32_t>& tokens, int32_t prefix_token, int64_t max_length) {
  std::vector<std::pair<std::vector<int32_t>, std::vector<int32_t>>> out;
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n == 0) return out;
  auto slice = [&](int64_t b, int64_t e) {
    b = std::max<int64_t>(b, 0);
    return std::vector<int32_t>(tokens.begin() + b, tokens.begin() + e);
  };
  // context_len = 1: pred_len = max_length; the windows are then made disjoint, which leaves
  // the context as the tokens before the continuation up to max_length in all.
  // The first window predicts tokens[:first] from the prefix token alone once made disjoint.
  const int64_t first = std::min(max_length, n);
  out.emplace_back(std::vector<int32_t>{prefix_token}, slice(0, first));
  int64_t predicted = first;
  while (predicted < n) {
    // Here predicted >= max_length, so the window input tokens[end - max_length - 1 : end - 1]
    // starts at >= 0; make_disjoint_window keeps its first max_length - pred + 1 tokens.
    const int64_t pred = std::min(n - predicted, max_length);
    const int64_t end = predicted + pred;
    const int64_t b = end - max_length - 1;
    out.emplace_back(slice(b, b + max_length - pred + 1), slice(end - pred, end));
    predicted += pred;
  }
  return out;
}

std::string cut_at_stops(std::string text, const std::vector<std::string>& until) {
  for (const auto& s : until) {
    if (s.empty()) continue;
    auto p = text.find(s);
    if (p != std::string::npos) text.resize(p);
  }
  return text;
}

std::string utf8_lossy(const std::string& s) {
  std::string out;
  size_t i = 0;
  auto at = [&](size_t k) { return static_cast<unsigned char>(s[k]); };
  while (i < s.size()) {
    const unsigned char b = at(i);
    if (b < 0x80) {
      out += static_cast<char>(b);
      ++i;
      continue;
    }
    size_t need = 0;                     // continuation bytes the lead byte announces
    unsigned char lo = 0x80, hi = 0xbf;  // allowed range of the first continuation byte
    if (b >= 0xc2 && b <= 0xdf)
      need = 1;
    else if (b >= 0xe0 && b <= 0xef) {
      need = 2;
      if (b == 0xe0) lo = 0xa0;
      if (b == 0xed) hi = 0x9f;
    } else if (b >= 0xf0 && b <= 0xf4) {
      need = 3;
      if (b == 0xf0) lo = 0x90;
      if (b == 0xf4) hi = 0x8f;
    }
    size_t k = 0;
    while (k < need && i + 1 + k < s.size()) {
      const unsigned char c = at(i + 1 + k);
      if (k == 0 ? (c < lo || c > hi) : (c < 0x80 || c > 0xbf)) break;
      ++k;
    }
    if (need > 0 && k == need) {
      out.append(s, i, need + 1);
    } else {
      out += "\xef\xbf\xbd";
    }
    i += need > 0 && k == need ? need + 1 : 1 + k;
  }
  return out;
}

size_t trailing_whitespace_bytes(const std::string& s) {
  size_t e = s.size();
  for (;;) {
    if (e >= 1) {
      unsigned char c = static_cast<unsigned char>(s[e - 1]);
      if (c == ' ' || (c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x1f)) {
        --e;
        continue;
      }
    }
    auto ends = [&](const char* u) {
      size_t n = std::char_traits<char>::length(u);
      return e >= n && s.compare(e - n, n, u) == 0 ? n : 0;
    };
    size_t n = 0;
    for (const char* u : {"\xc2\x85", "\xc2\xa0", "\xe1\x9a\x80", "\xe2\x80\xa8", "\xe2\x80\xa9",
                          "\xe2\x80\xaf", "\xe2\x81\x9f", "\xe3\x80\x80"})
      if ((n = ends(u))) break;
    if (!n && e >= 3 && static_cast<unsigned char>(s[e - 3]) == 0xe2 &&
        static_cast<unsigned char>(s[e - 2]) == 0x80 &&
        static_cast<unsigned char>(s[e - 1]) >= 0x80 &&
        static_cast<unsigned char>(s[e - 1]) <= 0x8a)
      n = 3;  // U+2000..U+200A
    if (!n) break;
    e -= n;
  }
  return s.size() - e;
}

}  // namespace reef::eval
