// The Jinja lexer for chat templates: splits a template into text and the tokens inside
// {{ }} and {% %} tags (comments dropped), applying whitespace control exactly as jinja2 does
// with the settings transformers uses: `-` strips, `+` keeps, trim_blocks drops the newline after
// a block or comment tag, lstrip_blocks drops the indentation before one, newlines are normalized
// to \n and one trailing newline of the template is dropped (keep_trailing_newline=False). Other
// users of the engine (lm-eval task templates) pick other settings through LexOptions.
#pragma once

#include <string>
#include <vector>

namespace reef::jinja {

enum class TokenKind {
  kText,        // literal template text (after whitespace control)
  kVarBegin,    // {{
  kVarEnd,      // }}
  kBlockBegin,  // {%
  kBlockEnd,    // %}
  kName,        // identifiers and keywords (if, for, and, not, in, is, true, ...)
  kString,      // a string literal, unescaped
  kInt,
  kFloat,
  kOp,  // + - * / // % ** ~ == != < <= > >= = ( ) [ ] { } , . : |
  kEof,
};

struct Token {
  TokenKind kind;
  std::string text;
  int line = 0, column = 0;  // 1-based position in the template source
};

struct LexOptions {
  bool trim_blocks = true;  // transformers' ImmutableSandboxedEnvironment settings
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;  // lm-eval's task environment keeps it
};

// Throws reef::Error "<name>:LINE:COL: ..." for an unterminated tag, string or comment.
std::vector<Token> lex_template(const std::string& source, const std::string& name,
                                const LexOptions& options = {});

}  // namespace reef::jinja
