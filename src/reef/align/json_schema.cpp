// Implementation of align/json_schema.h: a recursive walk over the schema and the instance
// together. Regexes are compiled once, when the schema is built.
#include "reef/align/json_schema.h"

#include <cmath>

#include "reef/base/error.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

constexpr int kMaxDepth = 256;  // a "$ref" cycle that consumes no instance ends here
const std::set<std::string> kTypes = {"string", "number", "integer", "boolean",
                                      "object", "array",  "null"};

// A key as a JSON pointer token ("/" and "~" escaped, RFC 6901).
std::string pointer_token(const std::string& key) {
  std::string out;
  for (char c : key) {
    if (c == '~')
      out += "~0";
    else if (c == '/')
      out += "~1";
    else
      out += c;
  }
  return out;
}

std::string shown(const ojson& v) {
  std::string s = v.dump();
  return s.size() > 60 ? s.substr(0, 57) + "..." : s;
}

// JSON equality as the spec defines it: numbers by value (1 == 1.0), objects whatever their key
// order (ordered_json's own == compares the order too).
bool json_equal(const ojson& a, const ojson& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_number_float() || b.is_number_float()) return a.get<double>() == b.get<double>();
    if (a.is_number_unsigned() && b.is_number_unsigned())
      return a.get<uint64_t>() == b.get<uint64_t>();
    if (a.is_number_unsigned() || b.is_number_unsigned()) {
      const ojson& u = a.is_number_unsigned() ? a : b;
      const ojson& s = a.is_number_unsigned() ? b : a;
      return s.get<int64_t>() >= 0 && static_cast<uint64_t>(s.get<int64_t>()) == u.get<uint64_t>();
    }
    return a.get<int64_t>() == b.get<int64_t>();
  }
  if (a.type() != b.type()) return false;
  if (a.is_array()) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (!json_equal(a[i], b[i])) return false;
    return true;
  }
  if (a.is_object()) {
    if (a.size() != b.size()) return false;
    for (const auto& [k, v] : a.items()) {
      auto it = b.find(k);
      if (it == b.end() || !json_equal(v, *it)) return false;
    }
    return true;
  }
  return a == b;
}

bool has_type(const std::string& type, const ojson& v) {
  if (type == "null") return v.is_null();
  if (type == "boolean") return v.is_boolean();
  if (type == "object") return v.is_object();
  if (type == "array") return v.is_array();
  if (type == "string") return v.is_string();
  if (type == "number") return v.is_number();
  // "integer": any number with a zero fractional part, 1.0 included (the spec's rule).
  if (!v.is_number()) return false;
  if (!v.is_number_float()) return true;
  const double x = v.get<double>();
  return std::isfinite(x) && std::floor(x) == x;
}

size_t code_points(const std::string& s) {
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xC0) != 0x80;
  return n;
}

bool is_count(const ojson& v) {
  return v.is_number() && has_type("integer", v) && v.get<double>() >= 0;
}

}  // namespace

JsonSchema::JsonSchema(ojson schema) : schema_(std::move(schema)) { compile(schema_, ""); }

const std::regex& JsonSchema::regex_of(const std::string& pattern) const {
  return regexes_.at(pattern);
}

void JsonSchema::compile(const ojson& s, const std::string& at) {
  if (s.is_boolean() || !compiled_.insert(&s).second) return;
  const std::string here = at.empty() ? "(root)" : at;
  if (!s.is_object()) usage_error("{}: a schema must be an object or a boolean", here);
  auto bad = [&](const std::string& key, const char* expected) {
    usage_error("{}/{}: expected {}, got {}", at, key, expected, shown(s[key]));
  };
  auto add_regex = [&](const std::string& key, const std::string& pattern) {
    if (regexes_.count(pattern)) return;
    try {
      regexes_.emplace(pattern, std::regex(pattern, std::regex::ECMAScript));
    } catch (const std::regex_error& e) {
      usage_error("{}/{}: invalid regex \"{}\": {}", at, key, pattern, e.what());
    }
  };
  for (const auto& [key, v] : s.items()) {
    const std::string sub = at + "/" + pointer_token(key);
    if (key == "type") {
      ojson list = v.is_array() ? v : ojson::array({v});
      for (const auto& t : list)
        if (!t.is_string() || !kTypes.count(t.get<std::string>()))
          bad(key, "a type name (string, number, integer, boolean, object, array, null) or a list");
    } else if (key == "properties" || key == "patternProperties" || key == "$defs" ||
               key == "definitions") {
      if (!v.is_object()) bad(key, "an object of schemas");
      for (const auto& [name, child] : v.items()) {
        if (key == "patternProperties") add_regex(key, name);
        compile(child, sub + "/" + pointer_token(name));
      }
    } else if (key == "required") {
      if (!v.is_array()) bad(key, "an array of property names");
      for (const auto& name : v)
        if (!name.is_string()) bad(key, "an array of property names");
    } else if (key == "additionalProperties" || key == "not") {
      compile(v, sub);
    } else if (key == "items") {
      if (v.is_array()) bad(key, "a schema (2020-12 spells the tuple form prefixItems)");
      compile(v, sub);
    } else if (key == "enum") {
      if (!v.is_array()) bad(key, "an array");
    } else if (key == "minimum" || key == "maximum" || key == "exclusiveMinimum" ||
               key == "exclusiveMaximum") {
      if (!v.is_number()) bad(key, "a number");
    } else if (key == "minLength" || key == "maxLength" || key == "minItems" || key == "maxItems") {
      if (!is_count(v)) bad(key, "a non-negative integer");
    } else if (key == "pattern") {
      if (!v.is_string()) bad(key, "a regex string");
      add_regex(key, v.get<std::string>());
    } else if (key == "anyOf" || key == "oneOf" || key == "allOf") {
      if (!v.is_array() || v.empty()) bad(key, "a non-empty array of schemas");
      for (size_t i = 0; i < v.size(); ++i) compile(v[i], sub + "/" + std::to_string(i));
    } else if (key == "$ref") {
      if (!v.is_string() || v.get<std::string>().substr(0, 1) != "#")
        bad(key, "a reference within this schema (\"#/$defs/name\")");
      const std::string ref = v.get<std::string>().substr(1);
      const ojson* target = nullptr;
      try {
        target = &schema_.at(ojson::json_pointer(ref));
      } catch (const std::exception&) {
      }
      if (!target || !(target->is_object() || target->is_boolean()))
        bad(key, "a reference to a schema within this schema");
      compile(*target, ref);
    }
  }
}

bool JsonSchema::validate(const ojson& instance, std::string* why) const {
  return check(schema_, instance, "", why, 0);
}

bool JsonSchema::check(const ojson& s, const ojson& v, const std::string& where, std::string* why,
                       int depth) const {
  auto fail = [&](const std::string& msg) {
    if (why) *why = (where.empty() ? "(root)" : where) + ": " + msg;
    return false;
  };
  if (depth > kMaxDepth) return fail("the schema nests too deep (a $ref cycle?)");
  if (s.is_boolean()) return s.get<bool>() ? true : fail("the schema false allows nothing");

  if (s.contains("$ref")) {
    const ojson& target = schema_.at(ojson::json_pointer(s["$ref"].get<std::string>().substr(1)));
    if (!check(target, v, where, why, depth + 1)) return false;
  }
  if (s.contains("type")) {
    const ojson& t = s["type"];
    bool ok = false;
    if (t.is_string()) {
      ok = has_type(t.get<std::string>(), v);
    } else {
      for (const auto& one : t) ok = ok || has_type(one.get<std::string>(), v);
    }
    if (!ok) return fail(fmt::format("{} is not of type {}", shown(v), t.dump()));
  }
  if (s.contains("enum")) {
    bool ok = false;
    for (const auto& e : s["enum"]) ok = ok || json_equal(e, v);
    if (!ok) return fail(fmt::format("{} is not one of {}", shown(v), shown(s["enum"])));
  }
  if (s.contains("const") && !json_equal(s["const"], v))
    return fail(fmt::format("{} is not the const {}", shown(v), shown(s["const"])));

  if (v.is_number()) {
    const double x = v.get<double>();
    if (s.contains("minimum") && x < s["minimum"].get<double>())
      return fail(fmt::format("{} is below the minimum {}", shown(v), s["minimum"].dump()));
    if (s.contains("maximum") && x > s["maximum"].get<double>())
      return fail(fmt::format("{} is above the maximum {}", shown(v), s["maximum"].dump()));
    if (s.contains("exclusiveMinimum") && x <= s["exclusiveMinimum"].get<double>())
      return fail(fmt::format("{} is not above the exclusiveMinimum {}", shown(v),
                              s["exclusiveMinimum"].dump()));
    if (s.contains("exclusiveMaximum") && x >= s["exclusiveMaximum"].get<double>())
      return fail(fmt::format("{} is not below the exclusiveMaximum {}", shown(v),
                              s["exclusiveMaximum"].dump()));
  }
  if (v.is_string()) {
    const std::string& str = v.get_ref<const std::string&>();
    const double n = static_cast<double>(code_points(str));
    if (s.contains("minLength") && n < s["minLength"].get<double>())
      return fail(fmt::format("{} is shorter than minLength {}", shown(v), s["minLength"].dump()));
    if (s.contains("maxLength") && n > s["maxLength"].get<double>())
      return fail(fmt::format("{} is longer than maxLength {}", shown(v), s["maxLength"].dump()));
    if (s.contains("pattern") && !std::regex_search(str, regex_of(s["pattern"].get<std::string>())))
      return fail(fmt::format("{} does not match the pattern {}", shown(v), s["pattern"].dump()));
  }
  if (v.is_array()) {
    const double n = static_cast<double>(v.size());
    if (s.contains("minItems") && n < s["minItems"].get<double>())
      return fail(fmt::format("{} items, fewer than minItems {}", v.size(), s["minItems"].dump()));
    if (s.contains("maxItems") && n > s["maxItems"].get<double>())
      return fail(fmt::format("{} items, more than maxItems {}", v.size(), s["maxItems"].dump()));
    if (s.contains("items"))
      for (size_t i = 0; i < v.size(); ++i)
        if (!check(s["items"], v[i], where + "/" + std::to_string(i), why, depth + 1)) return false;
  }
  if (v.is_object()) {
    if (s.contains("required"))
      for (const auto& name : s["required"])
        if (!v.contains(name.get<std::string>()))
          return fail(fmt::format("missing the required property {}", name.dump()));
    const ojson empty = ojson::object();
    const ojson& props = s.contains("properties") ? s["properties"] : empty;
    const ojson& patterns = s.contains("patternProperties") ? s["patternProperties"] : empty;
    for (const auto& [key, value] : v.items()) {
      const std::string at = where + "/" + pointer_token(key);
      bool known = false;
      if (props.contains(key)) {
        known = true;
        if (!check(props[key], value, at, why, depth + 1)) return false;
      }
      for (const auto& [pattern, sub] : patterns.items()) {
        if (!std::regex_search(key, regex_of(pattern))) continue;
        known = true;
        if (!check(sub, value, at, why, depth + 1)) return false;
      }
      if (known || !s.contains("additionalProperties")) continue;
      const ojson& extra = s["additionalProperties"];
      if (extra.is_boolean() && !extra.get<bool>())
        return fail(fmt::format("the property \"{}\" is not allowed (additionalProperties)", key));
      if (!check(extra, value, at, why, depth + 1)) return false;
    }
  }

  if (s.contains("allOf"))
    for (const auto& sub : s["allOf"])
      if (!check(sub, v, where, why, depth + 1)) return false;
  if (s.contains("anyOf")) {
    bool ok = false;
    for (const auto& sub : s["anyOf"]) ok = ok || check(sub, v, where, nullptr, depth + 1);
    if (!ok) return fail(fmt::format("{} matches none of the anyOf schemas", shown(v)));
  }
  if (s.contains("oneOf")) {
    int matched = 0;
    for (const auto& sub : s["oneOf"]) matched += check(sub, v, where, nullptr, depth + 1);
    if (matched != 1)
      return fail(fmt::format("{} matches {} of the oneOf schemas (exactly one allowed)", shown(v),
                              matched));
  }
  if (s.contains("not") && check(s["not"], v, where, nullptr, depth + 1))
    return fail(fmt::format("{} matches the schema of not", shown(v)));
  return true;
}

}  // namespace reef
