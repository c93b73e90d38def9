// Implementation of eval/template.h: a recursive-descent evaluator over the expression grammar
//   concat  := filtered (('+' | '~') filtered)*
//   filtered:= postfix ('|' name ['(' args ')'])*
//   postfix := primary ('.' name ['(' args ')'] | '[' concat ']')*
//   primary := name | string | integer | '[' list ']' | '(' concat ')'
#include "reef/eval/template.h"

#include <cctype>
#include <cmath>

#include "reef/base/error.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;

bool is_space(char c) {
  return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v';
}

std::string strip_chars(const std::string& s, bool left, bool right) {
  size_t b = 0, e = s.size();
  if (left)
    while (b < e && is_space(s[b])) ++b;
  if (right)
    while (e > b && is_space(s[e - 1])) --e;
  return s.substr(b, e - b);
}

std::string python_repr_string(const std::string& s) {
  const bool use_double = s.find('\'') != std::string::npos && s.find('"') == std::string::npos;
  const char q = use_double ? '"' : '\'';
  std::string out(1, q);
  for (char c : s) {
    if (c == q || c == '\\') {
      out += '\\';
      out += c;
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c == '\r') {
      out += "\\r";
    } else {
      out += c;
    }
  }
  return out + q;
}

class Parser {
 public:
  Parser(const std::string& src, const json& doc, const std::string& where)
      : s_(src), doc_(doc), where_(where) {}

  json parse_all() {
    json v = concat();
    skip_ws();
    if (pos_ != s_.size()) error("unexpected '{}'", s_.substr(pos_));
    return v;
  }

 private:
  template <typename... Args>
  [[noreturn]] void error(fmt::format_string<Args...> f, Args&&... args) {
    usage_error("{}: template expression '{}': {}", where_, s_,
                fmt::format(f, std::forward<Args>(args)...));
  }

  void skip_ws() {
    while (pos_ < s_.size() && is_space(s_[pos_])) ++pos_;
  }
  bool eat(char c) {
    skip_ws();
    if (pos_ < s_.size() && s_[pos_] == c) {
      ++pos_;
      return true;
    }
    return false;
  }
  void expect(char c) {
    if (!eat(c)) error("expected '{}'", c);
  }
  std::string name() {
    skip_ws();
    size_t b = pos_;
    while (pos_ < s_.size() &&
           (std::isalnum(static_cast<unsigned char>(s_[pos_])) || s_[pos_] == '_'))
      ++pos_;
    if (b == pos_) error("expected a name at '{}'", s_.substr(b));
    return s_.substr(b, pos_ - b);
  }
  std::vector<json> args() {
    std::vector<json> out;
    if (eat(')')) return out;
    do out.push_back(concat());
    while (eat(','));
    expect(')');
    return out;
  }

  json concat() {
    json v = filtered();
    for (;;) {
      if (eat('+')) {
        json r = filtered();
        if (v.is_number_integer() && r.is_number_integer())
          v = v.get<int64_t>() + r.get<int64_t>();
        else if (v.is_number() && r.is_number())
          v = v.get<double>() + r.get<double>();
        else if (v.is_string() && r.is_string())
          v = v.get<std::string>() + r.get<std::string>();
        else if (v.is_array() && r.is_array())
          for (auto& x : r) v.push_back(x);
        else
          error("'+' needs two strings, numbers or lists");
      } else if (eat('~')) {
        v = python_str(v) + python_str(filtered());
      } else {
        return v;
      }
    }
  }

  json filtered() {
    json v = postfix();
    while (eat('|')) {
      std::string f = name();
      std::vector<json> a;
      if (eat('(')) a = args();
      v = apply(f, v, a, /*is_filter=*/true);
    }
    return v;
  }

  json postfix() {
    json v = primary();
    for (;;) {
      if (eat('.')) {
        std::string n = name();
        if (eat('(')) {
          v = apply(n, v, args(), /*is_filter=*/false);
        } else {
          if (!v.is_object() || !v.contains(n)) error("no field '{}'", n);
          v = v[n];
        }
      } else if (eat('[')) {
        json key = concat();
        expect(']');
        v = index(v, key);
      } else {
        return v;
      }
    }
  }

  json index(const json& v, const json& key) {
    if (v.is_array() && key.is_number_integer()) {
      int64_t i = key.get<int64_t>(), n = static_cast<int64_t>(v.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) error("index {} out of range for a list of {}", key.get<int64_t>(), n);
      return v[static_cast<size_t>(i)];
    }
    if (v.is_string() && key.is_number_integer()) {
      const std::string& s = v.get_ref<const std::string&>();
      int64_t i = key.get<int64_t>(), n = static_cast<int64_t>(s.size());
      if (i < 0) i += n;
      if (i < 0 || i >= n) error("index {} out of range for a string of {}", key.get<int64_t>(), n);
      return std::string(1, s[static_cast<size_t>(i)]);
    }
    if (v.is_object() && key.is_string()) {
      if (!v.contains(key.get<std::string>())) error("no field '{}'", key.get<std::string>());
      return v[key.get<std::string>()];
    }
    error("cannot index {} with {}", v.type_name(), key.dump());
  }

  json primary() {
    skip_ws();
    if (pos_ >= s_.size()) error("unexpected end");
    char c = s_[pos_];
    if (c == '(') {
      ++pos_;
      json v = concat();
      expect(')');
      return v;
    }
    if (c == '[') {
      ++pos_;
      json list = json::array();
      if (eat(']')) return list;
      do list.push_back(concat());
      while (eat(','));
      expect(']');
      return list;
    }
    if (c == '\'' || c == '"') return string_literal(c);
    if (std::isdigit(static_cast<unsigned char>(c)) || c == '-') {
      size_t b = pos_++;
      while (pos_ < s_.size() && std::isdigit(static_cast<unsigned char>(s_[pos_]))) ++pos_;
      return static_cast<int64_t>(std::stoll(s_.substr(b, pos_ - b)));
    }
    std::string n = name();
    if (n == "True" || n == "true") return true;
    if (n == "False" || n == "false") return false;
    if (n == "None" || n == "none") return nullptr;
    if (!doc_.is_object() || !doc_.contains(n)) error("'{}' is not a field of the document", n);
    return doc_[n];
  }

  json string_literal(char q) {
    ++pos_;
    std::string out;
    while (pos_ < s_.size() && s_[pos_] != q) {
      char c = s_[pos_++];
      if (c == '\\' && pos_ < s_.size()) {
        char e = s_[pos_++];
        out += e == 'n' ? '\n' : e == 't' ? '\t' : e;
      } else {
        out += c;
      }
    }
    if (pos_ >= s_.size()) error("unterminated string");
    ++pos_;
    return out;
  }

  json apply(const std::string& f, const json& v, const std::vector<json>& a, bool is_filter) {
    auto need_string = [&]() -> const std::string& {
      if (!v.is_string()) error("{}() needs a string, got {}", f, v.type_name());
      return v.get_ref<const std::string&>();
    };
    if (f == "strip" || f == "trim") return strip_chars(need_string(), true, true);
    if (f == "lstrip") return strip_chars(need_string(), true, false);
    if (f == "rstrip") return strip_chars(need_string(), false, true);
    if (f == "lower" || f == "upper") {
      std::string s = need_string();
      for (auto& ch : s)
        ch = static_cast<char>(f == "lower" ? std::tolower(static_cast<unsigned char>(ch))
                                            : std::toupper(static_cast<unsigned char>(ch)));
      return s;
    }
    if (f == "string") return python_str(v);
    if (f == "int") {
      if (v.is_number()) return static_cast<int64_t>(v.get<double>());
      return static_cast<int64_t>(std::stoll(strip_chars(need_string(), true, true)));
    }
    if (f == "length" && is_filter) {
      if (v.is_string()) return static_cast<int64_t>(v.get_ref<const std::string&>().size());
      return static_cast<int64_t>(v.size());
    }
    if (f == "replace" && a.size() == 2 && a[0].is_string() && a[1].is_string()) {
      std::string s = need_string(), from = a[0].get<std::string>(), to = a[1].get<std::string>();
      if (from.empty()) return s;
      std::string out;
      size_t p = 0;
      for (size_t q; (q = s.find(from, p)) != std::string::npos; p = q + from.size())
        out += s.substr(p, q - p) + to;
      return out + s.substr(p);
    }
    if (f == "index" && !is_filter && a.size() == 1) {
      if (v.is_array()) {
        for (size_t i = 0; i < v.size(); ++i)
          if (v[i] == a[0]) return static_cast<int64_t>(i);
        error("{} is not in the list", a[0].dump());
      }
      if (v.is_string() && a[0].is_string()) {
        auto p = need_string().find(a[0].get<std::string>());
        if (p == std::string::npos) error("substring {} not found", a[0].dump());
        return static_cast<int64_t>(p);
      }
    }
    if (f == "split" && !is_filter && a.size() <= 1) {
      const std::string& s = need_string();
      json out = json::array();
      if (a.empty()) {  // Python's split(): runs of whitespace, no empty pieces
        size_t i = 0;
        while (i < s.size()) {
          while (i < s.size() && is_space(s[i])) ++i;
          size_t b = i;
          while (i < s.size() && !is_space(s[i])) ++i;
          if (i > b) out.push_back(s.substr(b, i - b));
        }
        return out;
      }
      const std::string sep = a[0].get<std::string>();
      if (sep.empty()) error("split() with an empty separator");
      size_t p = 0;
      for (size_t q; (q = s.find(sep, p)) != std::string::npos; p = q + sep.size())
        out.push_back(s.substr(p, q - p));
      out.push_back(s.substr(p));
      return out;
    }
    error("unsupported {} '{}' with {} argument(s)", is_filter ? "filter" : "method", f, a.size());
  }

  const std::string& s_;
  const json& doc_;
  const std::string& where_;
  size_t pos_ = 0;
};

struct Piece {
  bool is_expr;
  std::string text;
};

// Splits a template into literal text and expressions, applying `{{-`/`-}}` trimming.
std::vector<Piece> split_template(const std::string& t, const std::string& where) {
  std::vector<Piece> out;
  size_t p = 0;
  while (p < t.size()) {
    size_t open = t.find('{', p);
    while (open != std::string::npos && open + 1 < t.size() && t[open + 1] != '{' &&
           t[open + 1] != '%' && t[open + 1] != '#')
      open = t.find('{', open + 1);
    if (open == std::string::npos || open + 1 >= t.size()) {
      out.push_back({false, t.substr(p)});
      break;
    }
    out.push_back({false, t.substr(p, open - p)});
    const char kind = t[open + 1];
    if (kind == '%')
      usage_error("{}: Jinja statements ({{% ... %}}) are not supported in task templates: {}",
                  where, t);
    const std::string close = kind == '#' ? "#}" : "}}";
    size_t end = t.find(close, open + 2);
    if (end == std::string::npos)
      usage_error("{}: unclosed '{{{}' in template: {}", where, kind, t);
    std::string inner = t.substr(open + 2, end - open - 2);
    bool trim_left = !inner.empty() && inner.front() == '-';
    bool trim_right = !inner.empty() && inner.back() == '-';
    if (trim_left) {
      inner.erase(0, 1);
      out.back().text = strip_chars(out.back().text, false, true);
    }
    if (trim_right) inner.pop_back();
    if (kind == '{') out.push_back({true, inner});
    p = end + 2;
    if (trim_right)
      while (p < t.size() && is_space(t[p])) ++p;
  }
  return out;
}

}  // namespace

std::string python_str(const json& v, bool top) {
  if (v.is_string()) return top ? v.get<std::string>() : python_repr_string(v.get<std::string>());
  if (v.is_boolean()) return v.get<bool>() ? "True" : "False";
  if (v.is_null()) return "None";
  if (v.is_number_integer() || v.is_number_unsigned()) return v.dump();
  if (v.is_number_float()) {
    double d = v.get<double>();
    if (std::isfinite(d) && d == std::floor(d) && std::fabs(d) < 1e16)
      return fmt::format("{:.1f}", d);
    return fmt::format("{}", d);
  }
  std::string out;
  if (v.is_array()) {
    out = "[";
    for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + python_str(v[i], false);
    return out + "]";
  }
  out = "{";
  bool first = true;
  for (auto it = v.begin(); it != v.end(); ++it) {
    out +=
        (first ? "" : ", ") + python_repr_string(it.key()) + ": " + python_str(it.value(), false);
    first = false;
  }
  return out + "}";
}

std::string render_template(const std::string& tmpl, const json& doc, const std::string& where) {
  std::string out;
  for (const auto& piece : split_template(tmpl, where)) {
    if (!piece.is_expr) {
      out += piece.text;
    } else {
      out += python_str(Parser(piece.text, doc, where).parse_all());
    }
  }
  return out;
}

json template_value(const std::string& tmpl, const json& doc, const std::string& where) {
  auto pieces = split_template(tmpl, where);
  int exprs = 0;
  bool other_text = false;
  const Piece* expr = nullptr;
  for (const auto& p : pieces) {
    if (p.is_expr) {
      ++exprs;
      expr = &p;
    } else if (!strip_chars(p.text, true, true).empty()) {
      other_text = true;
    }
  }
  if (exprs == 1 && !other_text) return Parser(expr->text, doc, where).parse_all();
  return render_template(tmpl, doc, where);
}

}  // namespace reef::eval
