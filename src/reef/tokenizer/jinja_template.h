// A parsed Jinja template and its interpreter: renders with jinja2's scoping (for loops and
// macros open scopes, if does not; namespace() objects are shared), the globals transformers
// adds (raise_exception, strftime_now, namespace, dict) plus range, and records the byte spans
// that {% generation %} blocks produce, as transformers' AssistantTracker does. The defaults are
// transformers' environment; TemplateOptions gives lm-eval's (no block trimming, trailing newline
// kept, StrictUndefined) so task YAML templates render with the same engine.
#pragma once

#include <cstddef>
#include <string>
#include <utility>
#include <vector>

#include "reef/tokenizer/jinja_parser.h"
#include "reef/tokenizer/jinja_value.h"

namespace reef::jinja {

struct RenderResult {
  std::string text;
  // [begin, end) byte offsets in `text` of what each {% generation %} block rendered, in order.
  std::vector<std::pair<size_t, size_t>> generation_spans;
};

// raise_exception(message) from a template: the template refused its input.
class TemplateRaised : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct TemplateOptions {
  LexOptions lex;  // trim_blocks, lstrip_blocks, keep_trailing_newline
  // jinja2's StrictUndefined: printing, testing, iterating, comparing or filtering (except with
  // `default`) an undefined value is an error; `is defined` still works.
  bool strict_undefined = false;
  // The error for an undefined name in strict mode: "'NAME' " followed by this.
  std::string undefined_name_message = "is undefined";
  // Filters added to the built-in ones (jinja2's env.filters[name] = f), called with the filtered
  // value first; lm-eval adds regex_replace.
  std::vector<std::pair<std::string, Function>> filters;
};

class Template {
 public:
  // Parses `source`; `name` (a file path or template name) prefixes every error. Throws
  // reef::Error "NAME:LINE:COL: template syntax error: ..." on a syntax error.
  Template(const std::string& source, std::string name, TemplateOptions options = {});

  // Renders with `variables` as the template's top-level names. Throws reef::Error (usage kind):
  // "NAME: raise_exception: MESSAGE" when the template raises, "NAME:LINE:COL: MESSAGE" for an
  // evaluation error (undefined attribute, type error, ...).
  RenderResult render(const Dict& variables) const;

  // True when the template is one {{ expr }} with only whitespace around it.
  bool is_single_expression() const;
  // The value of that one expression (a list stays a list), where render() would print it.
  // Errors as render(); a usage error when the template is not a single expression.
  Value evaluate(const Dict& variables) const;

  bool has_generation_blocks() const { return has_generation_; }
  const std::string& name() const { return name_; }

 private:
  std::string name_;
  TemplateOptions options_;
  Body body_;
  bool has_generation_ = false;
};

}  // namespace reef::jinja
