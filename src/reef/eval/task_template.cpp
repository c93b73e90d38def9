// Implementation of eval/task_template.h: the document becomes the template's variables and a
// single expression's value comes back as JSON.
#include "reef/eval/task_template.h"

#include "reef/base/error.h"
#include "reef/tokenizer/jinja_template.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;

// lm_eval.utils: Environment(undefined=StrictUndefined, keep_trailing_newline=True).
jinja::Template parse(const std::string& tmpl, const std::string& where) {
  jinja::TemplateOptions o;
  o.lex.trim_blocks = false;
  o.lex.lstrip_blocks = false;
  o.lex.keep_trailing_newline = true;
  o.strict_undefined = true;
  o.undefined_name_message = "is not a field of the document";
  return jinja::Template(tmpl, where, o);
}

jinja::Dict variables(const json& doc) {
  jinja::Dict d;
  if (doc.is_object())
    for (auto it = doc.begin(); it != doc.end(); ++it)
      d.set(it.key(), jinja::Value::from_json(it.value()));
  return d;
}

json to_json(const jinja::Value& v, const std::string& where) {
  switch (v.kind()) {
    case jinja::Value::Kind::kNone:
      return nullptr;
    case jinja::Value::Kind::kBool:
      return v.truthy();
    case jinja::Value::Kind::kInt:
      return v.as_int();
    case jinja::Value::Kind::kFloat:
      return v.as_float();
    case jinja::Value::Kind::kString:
      return v.str();
    case jinja::Value::Kind::kList: {
      json out = json::array();
      for (const auto& x : v.items()) out.push_back(to_json(x, where));
      return out;
    }
    case jinja::Value::Kind::kDict: {
      json out = json::object();
      for (const auto& [k, x] : v.dict().items()) out[k] = to_json(x, where);
      return out;
    }
    default:
      usage_error("{}: the template's value is a {}, not data", where, v.type_name());
  }
}

}  // namespace

std::string render_template(const std::string& tmpl, const json& doc, const std::string& where) {
  return parse(tmpl, where).render(variables(doc)).text;
}

json template_value(const std::string& tmpl, const json& doc, const std::string& where) {
  jinja::Template t = parse(tmpl, where);
  if (t.is_single_expression()) return to_json(t.evaluate(variables(doc)), where);
  return t.render(variables(doc)).text;
}

std::string python_str(const json& v) { return jinja::Value::from_json(v).to_str(); }

}  // namespace reef::eval
