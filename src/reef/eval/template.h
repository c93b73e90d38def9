// The small Jinja subset that lm-evaluation-harness task YAMLs use in doc_to_text, doc_to_target,
// doc_to_choice and description, evaluated over one JSONL document (a JSON object). Kept small
// and self-contained so a full Jinja interpreter can replace it later.
//
// Supported: literal text; `{{ expr }}` with `{{-`/`-}}` whitespace trimming; `{# comments #}`.
// expr: document fields by name, `a.b` (object key), `a[expr]` (list index, negative from the
// end, or object key), string ('..' or "..") and integer literals, list literals [a, b],
// parentheses, `+` (numbers add, strings join), `~` (join as text), the methods strip(),
// lstrip(), rstrip(), lower(), upper(), replace(a, b), index(x), split() and split(sep), and the
// filters |trim, |lower, |upper, |length, |string, |int. Statements ({% ... %}) are refused with
// a message naming the template. A name that is not a field is an error (Jinja's
// StrictUndefined, as lm-eval configures it).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace reef::eval {

// Renders `tmpl` with the fields of `doc`. Values print as Jinja prints Python values:
// strings as they are, integers in decimal, true/false as True/False, lists as Python's repr.
// `where` names the template in errors ("task foo: doc_to_text").
std::string render_template(const std::string& tmpl, const nlohmann::json& doc,
                            const std::string& where);

// When `tmpl` is exactly one `{{ expr }}` (surrounding whitespace allowed), its value as JSON
// (a list stays a list); otherwise the rendered string. lm-eval reaches the same values by
// rendering and then ast.literal_eval.
nlohmann::json template_value(const std::string& tmpl, const nlohmann::json& doc,
                              const std::string& where);

// Python's repr()/str() of a JSON value as Jinja would print it (strings unquoted at the top
// level when `top` is true).
std::string python_str(const nlohmann::json& v, bool top = true);

}  // namespace reef::eval
