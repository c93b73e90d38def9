// lm-evaluation-harness task templates (doc_to_text, doc_to_target, doc_to_choice, description,
// judge rubrics) over the one Jinja engine (tokenizer/jinja_template.h), set up as lm-eval's
// apply_template sets up jinja2: no block trimming, the trailing newline kept, StrictUndefined
// (a name that is not a field of the document is an error).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace reef::eval {

// Renders `tmpl` with the fields of `doc` as its names. Values print as Jinja prints Python
// values: strings as they are, True/False, lists as Python's repr. `where` names the template in
// errors ("task foo: doc_to_text"); errors are usage errors.
std::string render_template(const std::string& tmpl, const nlohmann::json& doc,
                            const std::string& where);

// When `tmpl` is exactly one `{{ expr }}` (surrounding whitespace allowed), its value as JSON
// (a list stays a list); otherwise the rendered string. lm-eval reaches the same values by
// rendering and then ast.literal_eval.
nlohmann::json template_value(const std::string& tmpl, const nlohmann::json& doc,
                              const std::string& where);

// Python's str() of a JSON value, as {{ value }} prints it.
std::string python_str(const nlohmann::json& v);

}  // namespace reef::eval
