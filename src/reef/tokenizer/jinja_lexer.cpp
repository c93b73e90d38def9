// Jinja tokenization with jinja2's whitespace rules (see jinja_lexer.h). Positions are kept for
// every token so that a syntax error names the template line and column.
#include "reef/tokenizer/jinja_lexer.h"

#include <algorithm>
#include <cctype>

#include "reef/base/error.h"
#include "reef/tokenizer/jinja_value.h"
#include "reef/tokenizer/normalizer.h"

namespace reef::jinja {
namespace {

// Newlines normalized to \n, one trailing newline dropped unless kept (jinja2's defaults).
std::string normalize_source(const std::string& in, bool keep_trailing_newline) {
  std::string s;
  s.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] == '\r') {
      s += '\n';
      if (i + 1 < in.size() && in[i + 1] == '\n') ++i;
    } else {
      s += in[i];
    }
  }
  if (!keep_trailing_newline && !s.empty() && s.back() == '\n') s.pop_back();
  return s;
}

// Length in bytes of the whitespace code point at s[i], or 0.
size_t space_at(const std::string& s, size_t i) {
  unsigned char c = static_cast<unsigned char>(s[i]);
  size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : 4;
  if (i + n > s.size()) return 0;
  return is_python_space(s.substr(i, n)) ? n : 0;
}

class Lexer {
 public:
  Lexer(const std::string& source, const std::string& name, const LexOptions& o)
      : src_(normalize_source(source, o.keep_trailing_newline)), name_(name), opts_(o) {
    line_starts_.push_back(0);
    for (size_t i = 0; i < src_.size(); ++i)
      if (src_[i] == '\n') line_starts_.push_back(i + 1);
  }

  std::vector<Token> run() {
    size_t pos = 0;
    while (true) {
      size_t start = find_tag(pos);
      if (start == std::string::npos) {
        push_text(src_.substr(pos), pos);
        break;
      }
      char kind = src_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < src_.size() ? src_[start + 2] : 0;
      std::string text = src_.substr(pos, start - pos);
      if (sign == '-') {
        text = py_strip(text, false, true, nullptr);
      } else if (sign != '+' && opts_.lstrip_blocks && kind != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string::npos ? 0 : l_pos + 1;
        bool line_starting = pos == 0 || src_[pos - 1] == '\n';
        if ((l_pos > 0 || line_starting) && l_pos < text.size() &&
            text.find_first_not_of(" \t", l_pos) == std::string::npos)
          text.resize(l_pos);
      }
      push_text(text, pos);
      size_t body = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", body);
        if (end == std::string::npos) error(start, "unterminated comment: missing '#}'");
        char before = end > body ? src_[end - 1] : 0;
        pos = after_tag(end + 2, before, true);
        continue;
      }
      out_.push_back(make(kind == '{' ? TokenKind::kVarBegin : TokenKind::kBlockBegin,
                          kind == '{' ? "{{" : "{%", start));
      pos = lex_tag(body, kind == '{', start);
    }
    out_.push_back(make(TokenKind::kEof, "", src_.size()));
    return std::move(out_);
  }

 private:
  size_t find_tag(size_t pos) const {
    while (true) {
      size_t p = src_.find('{', pos);
      if (p == std::string::npos || p + 1 >= src_.size()) return std::string::npos;
      char c = src_[p + 1];
      if (c == '{' || c == '%' || c == '#') return p;
      pos = p + 1;
    }
  }

  // After a closing delimiter ending at `pos`: `-` strips all following whitespace; trim_blocks
  // drops one newline after a block or comment tag unless `+` was given.
  size_t after_tag(size_t pos, char sign, bool block_like) {
    if (sign == '-') {
      while (pos < src_.size()) {
        size_t n = space_at(src_, pos);
        if (!n) break;
        pos += n;
      }
    } else if (sign != '+' && block_like && opts_.trim_blocks && pos < src_.size() &&
               src_[pos] == '\n') {
      ++pos;
    }
    return pos;
  }

  // Tokens of one tag body from `pos` to its closing delimiter; returns the position after it.
  size_t lex_tag(size_t pos, bool is_var, size_t tag_start) {
    int depth = 0;  // open ( [ { inside the tag: a '}' then closes a literal, not the tag
    const std::string close = is_var ? "}}" : "%}";
    while (true) {
      while (pos < src_.size() && std::isspace(static_cast<unsigned char>(src_[pos]))) ++pos;
      if (pos >= src_.size())
        error(tag_start, std::string("unterminated tag: missing '") + close + "'");
      if (depth == 0) {
        char sign = 0;
        size_t p = pos;
        if ((src_[p] == '-' || src_[p] == '+') && src_.compare(p + 1, 2, close) == 0)
          sign = src_[p++];
        if (src_.compare(p, 2, close) == 0) {
          out_.push_back(make(is_var ? TokenKind::kVarEnd : TokenKind::kBlockEnd, close, pos));
          return after_tag(p + 2, sign, !is_var);
        }
      }
      char c = src_[pos];
      if (std::isalpha(static_cast<unsigned char>(c)) || c == '_') {
        size_t b = pos;
        while (pos < src_.size() &&
               (std::isalnum(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_'))
          ++pos;
        out_.push_back(make(TokenKind::kName, src_.substr(b, pos - b), b));
      } else if (std::isdigit(static_cast<unsigned char>(c))) {
        pos = lex_number(pos);
      } else if (c == '\'' || c == '"') {
        pos = lex_string(pos);
      } else {
        static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "+", "-", "*",
                                           "/",  "%",  "~",  "<",  ">",  "=",  "(", ")", "[",
                                           "]",  "{",  "}",  ",",  ".",  ":",  "|"};
        std::string op;
        for (const char* o : kOps)
          if (src_.compare(pos, std::char_traits<char>::length(o), o) == 0) {
            op = o;
            break;
          }
        if (op.empty()) error(pos, std::string("unexpected character '") + c + "'");
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        out_.push_back(make(TokenKind::kOp, op, pos));
        pos += op.size();
      }
    }
  }

  size_t lex_number(size_t pos) {
    size_t b = pos;
    bool is_float = false;
    auto digits = [&] {
      while (pos < src_.size() &&
             (std::isdigit(static_cast<unsigned char>(src_[pos])) || src_[pos] == '_'))
        ++pos;
    };
    digits();
    if (pos + 1 < src_.size() && src_[pos] == '.' &&
        std::isdigit(static_cast<unsigned char>(src_[pos + 1]))) {
      is_float = true;
      ++pos;
      digits();
    }
    if (pos < src_.size() && (src_[pos] == 'e' || src_[pos] == 'E')) {
      size_t p = pos + 1;
      if (p < src_.size() && (src_[p] == '+' || src_[p] == '-')) ++p;
      if (p < src_.size() && std::isdigit(static_cast<unsigned char>(src_[p]))) {
        is_float = true;
        pos = p;
        digits();
      }
    }
    std::string text;
    for (size_t i = b; i < pos; ++i)
      if (src_[i] != '_') text += src_[i];
    out_.push_back(make(is_float ? TokenKind::kFloat : TokenKind::kInt, text, b));
    return pos;
  }

  // Python string literal escapes (\n \t \\ \' \" \r \xNN \uNNNN ...); others stay as written.
  size_t lex_string(size_t pos) {
    char q = src_[pos];
    size_t b = pos++;
    std::string s;
    while (true) {
      if (pos >= src_.size()) error(b, "unterminated string literal");
      char c = src_[pos];
      if (c == q) break;
      if (c != '\\' || pos + 1 >= src_.size()) {
        s += c;
        ++pos;
        continue;
      }
      char e = src_[pos + 1];
      pos += 2;
      switch (e) {
        case 'n':
          s += '\n';
          break;
        case 't':
          s += '\t';
          break;
        case 'r':
          s += '\r';
          break;
        case '0':
          s += '\0';
          break;
        case 'a':
          s += '\a';
          break;
        case 'b':
          s += '\b';
          break;
        case 'f':
          s += '\f';
          break;
        case 'v':
          s += '\v';
          break;
        case '\\':
          s += '\\';
          break;
        case '\'':
          s += '\'';
          break;
        case '"':
          s += '"';
          break;
        case '\n':
          break;
        case 'x':
        case 'u':
        case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (pos + n > src_.size()) error(pos, "truncated escape in string literal");
          uint32_t cp = static_cast<uint32_t>(std::stoul(src_.substr(pos, n), nullptr, 16));
          pos += n;
          append_utf8(cp, s);
          break;
        }
        default:
          s += '\\', s += e;
      }
    }
    out_.push_back(make(TokenKind::kString, s, b));
    return pos + 1;
  }

  void push_text(const std::string& text, size_t pos) {
    if (!text.empty()) out_.push_back(make(TokenKind::kText, text, pos));
  }

  Token make(TokenKind k, std::string text, size_t offset) const {
    Token t{k, std::move(text)};
    position(offset, &t.line, &t.column);
    return t;
  }

  void position(size_t offset, int* line, int* col) const {
    offset = std::min(offset, src_.size());
    size_t l =
        std::upper_bound(line_starts_.begin(), line_starts_.end(), offset) - line_starts_.begin();
    *line = static_cast<int>(l);
    size_t line_start = line_starts_[l - 1];
    *col = static_cast<int>(code_point_count(src_.substr(line_start, offset - line_start))) + 1;
  }

  [[noreturn]] void error(size_t offset, const std::string& what) const {
    int line, col;
    position(offset, &line, &col);
    usage_error("{}:{}:{}: template syntax error: {}", name_, line, col, what);
  }

  std::string src_, name_;
  std::vector<size_t> line_starts_;  // offset of each line's first byte
  LexOptions opts_;
  std::vector<Token> out_;
};

}  // namespace

std::vector<Token> lex_template(const std::string& source, const std::string& name,
                                const LexOptions& options) {
  return Lexer(source, name, options).run();
}

}  // namespace reef::jinja
