// Implementation of eval/task_template.h: the document becomes the template's variables and a
// single expression's value comes back as JSON.
#include "reef/eval/task_template.h"

#include "reef/base/error.h"
#include "reef/eval/metrics.h"
#include "reef/tokenizer/jinja_template.h"

namespace reef::eval {
namespace {

using json = nlohmann::json;

// lm_eval.utils.regex_replace: re.sub(pattern, repl, string, count). PyRegex substitutes
// literally, so a replacement with backslash escapes (group references) is refused, not misread.
jinja::Value regex_replace(const jinja::List& a, const jinja::Kwargs& kw,
                           const std::string& where) {
  auto arg = [&](size_t i, const char* name) -> const jinja::Value* {
    if (i < a.size()) return &a[i];
    for (const auto& [k, v] : kw)
      if (k == name) return &v;
    return nullptr;
  };
  const jinja::Value *pattern = arg(1, "pattern"), *repl = arg(2, "repl"), *count = arg(3, "count");
  if (!pattern || !repl || !pattern->is_string() || !repl->is_string())
    usage_error("{}: regex_replace(pattern, repl) needs two strings", where);
  if (count && count->as_int() != 0)
    usage_error("{}: regex_replace: count is not supported", where);
  if (repl->str().find('\\') != std::string::npos)
    usage_error("{}: regex_replace: backslash escapes in the replacement are not supported: {}",
                where, repl->str());
  return jinja::Value(
      PyRegex(pattern->str(), where + ": regex_replace").sub(a[0].to_str(), repl->str()));
}

// lm_eval.utils: Environment(undefined=StrictUndefined, keep_trailing_newline=True) with the
// regex_replace filter.
jinja::Template parse(const std::string& tmpl, const std::string& where) {
  jinja::TemplateOptions o;
  o.lex.trim_blocks = false;
  o.lex.lstrip_blocks = false;
  o.lex.keep_trailing_newline = true;
  o.strict_undefined = true;
  o.undefined_name_message = "is not a field of the document";
  o.filters.emplace_back("regex_replace", [where](const jinja::List& a, const jinja::Kwargs& kw) {
    return regex_replace(a, kw, where);
  });
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
