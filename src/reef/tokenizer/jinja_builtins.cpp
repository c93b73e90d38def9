// jinja2's filters and tests and the Python str/dict/list methods chat templates call, with
// Python's results (code-point lengths and offsets, str.split's whitespace rule, dict.get's None).
#include "reef/tokenizer/jinja_builtins.h"

#include <unicode/locid.h>
#include <unicode/unistr.h>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace reef::jinja {
namespace {

[[noreturn]] void type_error(const std::string& what) { throw EvalError(what); }

const Value* kwarg(const Kwargs& kw, const char* name) {
  for (const auto& [k, v] : kw)
    if (k == name) return &v;
  return nullptr;
}

// Argument `i` by position, else by keyword, else `def`.
Value arg(const List& args, const Kwargs& kw, size_t i, const char* name, Value def = Value()) {
  if (i < args.size()) return args[i];
  if (const Value* v = kwarg(kw, name)) return *v;
  return def;
}

std::string ascii_map(std::string s, int (*f)(int)) {
  for (char& c : s) c = static_cast<char>(f(static_cast<unsigned char>(c)));
  return s;
}

// Python's str.upper / str.lower: full Unicode case mapping (ICU's root locale), ASCII fast path.
std::string case_map(const std::string& s, bool upper) {
  if (std::all_of(s.begin(), s.end(), [](char c) { return static_cast<unsigned char>(c) < 0x80; }))
    return upper ? ascii_map(s, [](int c) { return std::toupper(c); })
                 : ascii_map(s, [](int c) { return std::tolower(c); });
  icu::UnicodeString u = icu::UnicodeString::fromUTF8(s);
  if (upper)
    u.toUpper(icu::Locale::getRoot());
  else
    u.toLower(icu::Locale::getRoot());
  std::string out;
  u.toUTF8String(out);
  return out;
}

std::string upper(const std::string& s) { return case_map(s, true); }
std::string lower(const std::string& s) { return case_map(s, false); }

// str.capitalize: the first character upper-cased, the rest lower-cased.
std::string capitalize(const std::string& s) {
  std::vector<std::string> cps = code_points(s);
  if (cps.empty()) return s;
  std::string rest;
  for (size_t i = 1; i < cps.size(); ++i) rest += cps[i];
  return upper(cps[0]) + lower(rest);
}

std::string title(const std::string& s) {
  std::string out = s;
  bool start = true;
  for (char& c : out) {
    unsigned char u = static_cast<unsigned char>(c);
    if (std::isalpha(u)) {
      c = static_cast<char>(start ? std::toupper(u) : std::tolower(u));
      start = false;
    } else {
      start = u < 0x80;  // non-ASCII bytes continue a word
    }
  }
  return out;
}

std::string replace_all(const std::string& s, const std::string& from, const std::string& to,
                        int64_t count) {
  if (from.empty()) {
    std::string out;
    int64_t n = 0;
    for (const std::string& cp : code_points(s)) {
      if (count < 0 || n < count) out += to, ++n;
      out += cp;
    }
    if (count < 0 || n < count) out += to;
    return out;
  }
  std::string out;
  size_t pos = 0;
  int64_t n = 0;
  while (count < 0 || n < count) {
    size_t at = s.find(from, pos);
    if (at == std::string::npos) break;
    out += s.substr(pos, at - pos) + to;
    pos = at + from.size();
    ++n;
  }
  return out + s.substr(pos);
}

// str.split / str.rsplit; sep null: runs of whitespace, ignoring leading/trailing whitespace.
List split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
  List out;
  if (sep.is_none() || sep.is_undefined()) {
    std::vector<std::string> cps = code_points(s);
    std::vector<std::string> words;
    std::vector<std::pair<size_t, size_t>> spans;  // code point ranges of words
    size_t i = 0;
    while (i < cps.size()) {
      while (i < cps.size() && is_python_space(cps[i])) ++i;
      if (i >= cps.size()) break;
      size_t b = i;
      while (i < cps.size() && !is_python_space(cps[i])) ++i;
      spans.emplace_back(b, i);
    }
    auto join = [&](size_t b, size_t e) {
      std::string w;
      for (size_t k = b; k < e; ++k) w += cps[k];
      return w;
    };
    if (maxsplit < 0 || static_cast<size_t>(maxsplit) >= spans.size()) {
      for (auto [b, e] : spans) out.push_back(Value(join(b, e)));
    } else if (!from_right) {
      for (int64_t k = 0; k < maxsplit; ++k)
        out.push_back(Value(join(spans[k].first, spans[k].second)));
      size_t rest = spans[maxsplit].first;
      std::string tail = join(rest, cps.size());
      out.push_back(Value(py_strip(tail, false, true, nullptr)));
    } else {
      size_t n = spans.size();
      size_t keep = n - static_cast<size_t>(maxsplit);
      std::string head = join(0, spans[keep - 1].second);
      out.push_back(Value(py_strip(head, true, false, nullptr)));
      for (size_t k = keep; k < n; ++k) out.push_back(Value(join(spans[k].first, spans[k].second)));
    }
    return out;
  }
  if (!sep.is_string()) type_error("must be str or None, not " + sep.type_name());
  const std::string& d = sep.str();
  if (d.empty()) type_error("empty separator");
  std::vector<std::string> parts;
  size_t pos = 0;
  while (true) {
    size_t at = s.find(d, pos);
    if (at == std::string::npos) break;
    parts.push_back(s.substr(pos, at - pos));
    pos = at + d.size();
  }
  parts.push_back(s.substr(pos));
  if (maxsplit >= 0 && parts.size() > static_cast<size_t>(maxsplit) + 1) {
    std::vector<std::string> merged;
    if (!from_right) {
      merged.assign(parts.begin(), parts.begin() + maxsplit);
      std::string rest = parts[maxsplit];
      for (size_t k = maxsplit + 1; k < parts.size(); ++k) rest += d + parts[k];
      merged.push_back(rest);
    } else {
      size_t keep = parts.size() - static_cast<size_t>(maxsplit);
      std::string head = parts[0];
      for (size_t k = 1; k < keep; ++k) head += d + parts[k];
      merged.push_back(head);
      merged.insert(merged.end(), parts.begin() + keep, parts.end());
    }
    parts = merged;
  }
  for (auto& p : parts) out.push_back(Value(p));
  return out;
}

int64_t cp_offset(const std::string& s, size_t byte_pos) {
  return static_cast<int64_t>(code_point_count(s.substr(0, byte_pos)));
}

bool str_starts(const std::string& s, const Value& prefix, bool ends) {
  auto one = [&](const Value& p) {
    if (!p.is_string())
      type_error("startswith/endswith takes str or a tuple of str, not " + p.type_name());
    const std::string& x = p.str();
    if (x.size() > s.size()) return false;
    return ends ? s.compare(s.size() - x.size(), x.size(), x) == 0 : s.compare(0, x.size(), x) == 0;
  };
  if (prefix.is_list()) {
    for (const Value& p : prefix.items())
      if (one(p)) return true;
    return false;
  }
  return one(prefix);
}

Value string_method(const std::string& s, const std::string& name, const List& a,
                    const Kwargs& kw) {
  auto sarg = [&](size_t i, const char* n) -> std::string {
    Value v = arg(a, kw, i, n);
    if (!v.is_string()) type_error(name + "() argument must be str, not " + v.type_name());
    return v.str();
  };
  if (name == "startswith" || name == "endswith")
    return Value(str_starts(s, arg(a, kw, 0, "prefix"), name == "endswith"));
  if (name == "strip" || name == "lstrip" || name == "rstrip") {
    Value chars = arg(a, kw, 0, "chars", Value::none());
    std::string cs = chars.is_string() ? chars.str() : "";
    return Value(
        py_strip(s, name != "rstrip", name != "lstrip", chars.is_string() ? &cs : nullptr));
  }
  if (name == "split" || name == "rsplit")
    return Value::list(split(s, arg(a, kw, 0, "sep", Value::none()),
                             arg(a, kw, 1, "maxsplit", Value(-1)).as_int(), name == "rsplit"));
  if (name == "replace")
    return Value(
        replace_all(s, sarg(0, "old"), sarg(1, "new"), arg(a, kw, 2, "count", Value(-1)).as_int()));
  if (name == "upper") return Value(upper(s));
  if (name == "lower") return Value(lower(s));
  if (name == "capitalize") return Value(capitalize(s));
  if (name == "title") return Value(title(s));
  if (name == "find" || name == "index" || name == "rfind" || name == "rindex") {
    std::string sub = sarg(0, "sub");
    size_t at = name[0] == 'r' ? s.rfind(sub) : s.find(sub);
    if (at == std::string::npos) {
      if (name.find("index") != std::string::npos) type_error("substring not found");
      return Value(-1);
    }
    return Value(cp_offset(s, at));
  }
  if (name == "count") {
    std::string sub = sarg(0, "sub");
    if (sub.empty()) return Value(static_cast<int64_t>(code_point_count(s) + 1));
    int64_t n = 0;
    for (size_t at = s.find(sub); at != std::string::npos; at = s.find(sub, at + sub.size())) ++n;
    return Value(n);
  }
  if (name == "join") {
    std::string out;
    bool first = true;
    for (const Value& v : iterate(arg(a, kw, 0, "iterable"))) {
      if (!v.is_string())
        type_error("sequence item: expected str instance, " + v.type_name() + " found");
      out += (first ? "" : s) + v.str();
      first = false;
    }
    return Value(out);
  }
  if (name == "splitlines") {
    List out;
    size_t b = 0;
    for (size_t i = 0; i < s.size(); ++i)
      if (s[i] == '\n' || s[i] == '\r') {
        out.push_back(Value(s.substr(b, i - b)));
        if (s[i] == '\r' && i + 1 < s.size() && s[i + 1] == '\n') ++i;
        b = i + 1;
      }
    if (b < s.size()) out.push_back(Value(s.substr(b)));
    return Value::list(out);
  }
  if (name == "removeprefix" || name == "removesuffix") {
    std::string x = sarg(0, "prefix");
    bool pre = name == "removeprefix";
    if (str_starts(s, Value(x), !pre))
      return Value(pre ? s.substr(x.size()) : s.substr(0, s.size() - x.size()));
    return Value(s);
  }
  auto all_of = [&](int (*f)(int)) {
    if (s.empty()) return Value(false);
    for (unsigned char c : s)
      if (!f(c)) return Value(false);
    return Value(true);
  };
  if (name == "isdigit") return all_of([](int c) { return std::isdigit(c); });
  if (name == "isalpha") return all_of([](int c) { return std::isalpha(c); });
  if (name == "isalnum") return all_of([](int c) { return std::isalnum(c); });
  if (name == "isspace") {
    std::vector<std::string> cps = code_points(s);
    return Value(!cps.empty() && std::all_of(cps.begin(), cps.end(), is_python_space));
  }
  if (name == "islower") return Value(s != upper(s) && s == lower(s));
  if (name == "isupper") return Value(s != lower(s) && s == upper(s));
  type_error("'str' object has no attribute '" + name + "'");
}

bool is_string_method(const std::string& n) {
  static const char* const kNames[] = {
      "startswith", "endswith",     "strip",        "lstrip",  "rstrip",     "split",
      "rsplit",     "replace",      "upper",        "lower",   "capitalize", "title",
      "find",       "rfind",        "index",        "rindex",  "count",      "join",
      "splitlines", "removeprefix", "removesuffix", "isdigit", "isalpha",    "isalnum",
      "isspace",    "islower",      "isupper"};
  return std::find_if(std::begin(kNames), std::end(kNames),
                      [&](const char* k) { return n == k; }) != std::end(kNames);
}

List dict_items(const Dict& d) {
  List out;
  for (const auto& [k, v] : d.items()) out.push_back(Value::list({Value(k), v}, true));
  return out;
}

// jinja2's attribute getter for filters: "a.b.0" walks attributes and indexes.
Value attr_path(const Value& v, const std::string& path) {
  Value cur = v;
  size_t b = 0;
  while (b <= path.size()) {
    size_t e = path.find('.', b);
    if (e == std::string::npos) e = path.size();
    std::string part = path.substr(b, e - b);
    bool digits = !part.empty() && std::all_of(part.begin(), part.end(), ::isdigit);
    cur = digits ? get_item(cur, Value(static_cast<int64_t>(std::stoll(part))))
                 : get_item(cur, Value(part));
    b = e + 1;
  }
  return cur;
}

}  // namespace

List iterate(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return {};
    case Value::Kind::kList:
      return v.items();
    case Value::Kind::kDict: {
      List keys;
      for (const auto& kv : v.dict().items()) keys.push_back(Value(kv.first));
      return keys;
    }
    case Value::Kind::kString: {
      List out;
      for (auto& cp : code_points(v.str())) out.push_back(Value(cp));
      return out;
    }
    default:
      type_error("'" + v.type_name() + "' object is not iterable");
  }
}

int64_t length_of(const Value& v) {
  switch (v.kind()) {
    case Value::Kind::kUndefined:
      return 0;
    case Value::Kind::kString:
      return static_cast<int64_t>(code_point_count(v.str()));
    case Value::Kind::kList:
      return static_cast<int64_t>(v.items().size());
    case Value::Kind::kDict:
      return static_cast<int64_t>(v.dict().size());
    default:
      type_error("object of type '" + v.type_name() + "' has no len()");
  }
}

Value get_attribute(const Value& obj, const std::string& name) {
  if (obj.is_undefined())
    throw EvalError((obj.str().empty() ? std::string("value") : "'" + obj.str() + "'") +
                    " is undefined");
  if (obj.is_dict()) {
    if (!obj.is_namespace() &&
        (name == "get" || name == "items" || name == "keys" || name == "values")) {
      Value self = obj;
      return Value::function("dict." + name, [self, name](const List& a, const Kwargs& kw) {
        const Dict& d = self.dict();
        if (name == "get") {
          Value key = arg(a, kw, 0, "key");
          const Value* v = key.is_string() ? d.find(key.str()) : nullptr;
          return v ? *v : arg(a, kw, 1, "default", Value::none());
        }
        if (name == "items") return Value::list(dict_items(d));
        List out;
        for (const auto& [k, v] : d.items()) out.push_back(name == "keys" ? Value(k) : v);
        return Value::list(out);
      });
    }
    if (const Value* v = obj.dict().find(name)) return *v;
    return Value::undefined("'dict object' has no attribute '" + name + "'");
  }
  if (obj.is_string() && is_string_method(name)) {
    std::string s = obj.str();
    return Value::function("str." + name, [s, name](const List& a, const Kwargs& kw) {
      return string_method(s, name, a, kw);
    });
  }
  if (obj.is_list() && (name == "index" || name == "count")) {
    Value self = obj;
    return Value::function("list." + name, [self, name](const List& a, const Kwargs&) {
      if (a.empty()) type_error(name + "() takes exactly one argument");
      int64_t n = 0;
      for (size_t i = 0; i < self.items().size(); ++i)
        if (equal(self.items()[i], a[0])) {
          if (name == "index") return Value(static_cast<int64_t>(i));
          ++n;
        }
      if (name == "index") type_error(a[0].repr() + " is not in list");
      return Value(n);
    });
  }
  return Value::undefined("'" + obj.type_name() + " object' has no attribute '" + name + "'");
}

Value get_item(const Value& obj, const Value& key) {
  if (obj.is_undefined())
    throw EvalError((obj.str().empty() ? std::string("value") : "'" + obj.str() + "'") +
                    " is undefined");
  if (obj.is_dict()) {
    if (key.is_string()) {
      if (const Value* v = obj.dict().find(key.str())) return *v;
      return get_attribute(obj, key.str());
    }
    return Value::undefined("'dict object' has no attribute " + key.repr());
  }
  if ((obj.is_list() || obj.is_string()) && key.is_int()) {
    int64_t n = length_of(obj), i = key.as_int();
    if (i < 0) i += n;
    if (i < 0 || i >= n) return Value::undefined(obj.type_name() + " index out of range");
    if (obj.is_list()) return obj.items()[static_cast<size_t>(i)];
    return Value(code_points(obj.str())[static_cast<size_t>(i)]);
  }
  if (key.is_string()) return get_attribute(obj, key.str());
  return Value::undefined("'" + obj.type_name() + " object' has no item " + key.repr());
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
  if (!obj.is_list() && !obj.is_string())
    type_error("'" + obj.type_name() + "' object is not subscriptable");
  List items = obj.is_list() ? obj.items() : iterate(obj);
  const int64_t n = static_cast<int64_t>(items.size());
  int64_t st = step.is_int() ? step.as_int() : 1;
  if (st == 0) type_error("slice step cannot be zero");
  auto bound = [&](const Value& v, int64_t def) {
    if (!v.is_int()) return def;
    int64_t x = v.as_int();
    if (x < 0) x += n;
    if (st > 0) return std::clamp<int64_t>(x, 0, n);
    return std::clamp<int64_t>(x, -1, n - 1);
  };
  int64_t b = bound(start, st > 0 ? 0 : n - 1), e = bound(stop, st > 0 ? n : -1);
  List out;
  for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[static_cast<size_t>(i)]);
  if (obj.is_list()) return Value::list(out, obj.is_tuple());
  std::string s;
  for (const Value& v : out) s += v.str();
  return Value(s);
}

bool apply_test(const std::string& name, const Value& v, const List& a) {
  auto need = [&](size_t k) {
    if (a.size() < k) type_error("test '" + name + "' needs an argument");
  };
  if (name == "defined") return !v.is_undefined();
  if (name == "undefined") return v.is_undefined();
  if (name == "none") return v.is_none();
  if (name == "boolean") return v.is_bool();
  if (name == "true") return v.is_bool() && v.truthy();
  if (name == "false") return v.is_bool() && !v.truthy();
  if (name == "integer") return v.kind() == Value::Kind::kInt;
  if (name == "float") return v.kind() == Value::Kind::kFloat;
  if (name == "number") return v.is_number();
  if (name == "string") return v.is_string();
  if (name == "mapping") return v.is_dict() && !v.is_namespace();
  if (name == "iterable") return v.is_undefined() || v.is_list() || v.is_string() || v.is_dict();
  if (name == "sequence") return v.is_list() || v.is_string() || (v.is_dict() && !v.is_namespace());
  if (name == "callable") return v.is_function();
  if (name == "odd" || name == "even") {
    if (!v.is_int()) type_error("test '" + name + "' needs an integer");
    int64_t r = ((v.as_int() % 2) + 2) % 2;
    return name == "odd" ? r == 1 : r == 0;
  }
  if (name == "divisibleby") {
    need(1);
    return a[0].as_int() != 0 && v.as_int() % a[0].as_int() == 0;
  }
  if (name == "lower") return v.is_string() && v.str() == lower(v.str());
  if (name == "upper") return v.is_string() && v.str() == upper(v.str());
  if (name == "equalto" || name == "eq" || name == "==" || name == "sameas")
    return need(1), equal(v, a[0]);
  if (name == "ne" || name == "!=") return need(1), !equal(v, a[0]);
  if (name == "lt" || name == "lessthan" || name == "<") return need(1), less(v, a[0]);
  if (name == "le" || name == "<=") return need(1), !less(a[0], v);
  if (name == "gt" || name == "greaterthan" || name == ">") return need(1), less(a[0], v);
  if (name == "ge" || name == ">=") return need(1), !less(v, a[0]);
  if (name == "in") {
    need(1);
    if (a[0].is_string()) return v.is_string() && a[0].str().find(v.str()) != std::string::npos;
    if (a[0].is_dict()) return v.is_string() && a[0].dict().find(v.str()) != nullptr;
    for (const Value& x : iterate(a[0]))
      if (equal(x, v)) return true;
    return false;
  }
  type_error("no test named '" + name + "'");
}

namespace {

// select/reject/selectattr/rejectattr: args after the attribute name are the test and its args.
Value select_items(const Value& seq, const List& a, bool by_attr, bool keep) {
  size_t off = by_attr ? 1 : 0;
  if (by_attr && (a.empty() || !a[0].is_string())) type_error("selectattr needs an attribute name");
  std::string test = a.size() > off ? a[off].str() : "";
  List targs(a.begin() + std::min(a.size(), off + 1), a.end());
  List out;
  for (const Value& item : iterate(seq)) {
    Value x = by_attr ? attr_path(item, a[0].str()) : item;
    bool ok = test.empty() ? x.truthy() : apply_test(test, x, targs);
    if (ok == keep) out.push_back(item);
  }
  return Value::list(out);
}

// jinja2's indent: s + "\n" split into lines; later lines indented (empty ones only with blank).
std::string indent_text(const std::string& s, const std::string& pad, bool first, bool blank) {
  std::vector<std::string> lines;
  for (const Value& l : string_method(s + "\n", "splitlines", {}, {}).items())
    lines.push_back(l.str());
  std::string rv;
  if (blank) {
    for (size_t i = 0; i < lines.size(); ++i) rv += (i ? "\n" + pad : "") + lines[i];
  } else {
    rv = lines.empty() ? "" : lines[0];
    for (size_t i = 1; i < lines.size(); ++i) rv += "\n" + (lines[i].empty() ? "" : pad) + lines[i];
  }
  return first ? pad + rv : rv;
}

}  // namespace

Value apply_filter(const std::string& name, const Value& v, const List& a, const Kwargs& kw) {
  if (name == "trim") {
    Value chars = arg(a, kw, 0, "chars", Value::none());
    std::string cs = chars.is_string() ? chars.str() : "";
    return Value(py_strip(v.to_str(), true, true, chars.is_string() ? &cs : nullptr));
  }
  if (name == "length" || name == "count") return Value(length_of(v));
  if (name == "tojson") {
    // transformers: json.dumps(x, ensure_ascii=False, indent=None, separators=None,
    // sort_keys=False)
    Value ascii = arg(a, kw, 0, "ensure_ascii", Value(false));
    Value indent = arg(a, kw, 1, "indent", Value::none());
    Value seps = arg(a, kw, 2, "separators", Value::none());
    Value sort = arg(a, kw, 3, "sort_keys", Value(false));
    std::string item_sep, key_sep;
    if (seps.is_list() && seps.items().size() == 2)
      item_sep = seps.items()[0].str(), key_sep = seps.items()[1].str();
    int ind = indent.is_int() ? static_cast<int>(indent.as_int()) : -1;
    return Value(v.to_json(ind, item_sep, key_sep, sort.truthy(), ascii.truthy()));
  }
  if (name == "items") {
    if (v.is_undefined()) return Value::list();
    if (!v.is_dict()) type_error("items filter needs a mapping, got " + v.type_name());
    return Value::list(dict_items(v.dict()));
  }
  if (name == "upper") return Value(upper(v.to_str()));
  if (name == "lower") return Value(lower(v.to_str()));
  if (name == "capitalize") return Value(capitalize(v.to_str()));
  if (name == "title") return Value(title(v.to_str()));
  if (name == "replace") {
    Value cnt = arg(a, kw, 2, "count", Value::none());
    return Value(replace_all(v.to_str(), arg(a, kw, 0, "old").to_str(),
                             arg(a, kw, 1, "new").to_str(), cnt.is_int() ? cnt.as_int() : -1));
  }
  if (name == "default" || name == "d") {
    bool boolean = arg(a, kw, 1, "boolean", Value(false)).truthy();
    if (v.is_undefined() || (boolean && !v.truthy()))
      return arg(a, kw, 0, "default_value", Value(""));
    return v;
  }
  if (name == "join") {
    std::string sep = arg(a, kw, 0, "d", Value("")).to_str();
    Value attr = arg(a, kw, 1, "attribute", Value::none());
    std::string out;
    bool first = true;
    for (const Value& x : iterate(v)) {
      out += (first ? "" : sep) + (attr.is_none() ? x : attr_path(x, attr.to_str())).to_str();
      first = false;
    }
    return Value(out);
  }
  if (name == "first" || name == "last") {
    List items = iterate(v);
    if (items.empty()) return Value::undefined("No " + name + " item, sequence was empty.");
    return name == "first" ? items.front() : items.back();
  }
  if (name == "string") return Value(v.to_str());
  if (name == "list") return Value::list(iterate(v));
  if (name == "safe") return v;
  if (name == "selectattr" || name == "rejectattr")
    return select_items(v, a, true, name == "selectattr");
  if (name == "select" || name == "reject") return select_items(v, a, false, name == "select");
  if (name == "map") {
    List out;
    const Value* attr = kwarg(kw, "attribute");
    for (const Value& x : iterate(v)) {
      if (attr) {
        Value got = attr_path(x, attr->to_str());
        const Value* def = kwarg(kw, "default");
        out.push_back(got.is_undefined() && def ? *def : got);
      } else {
        if (a.empty()) type_error("map needs a filter name or attribute=");
        out.push_back(apply_filter(a[0].to_str(), x, List(a.begin() + 1, a.end()), {}));
      }
    }
    return Value::list(out);
  }
  if (name == "int") {
    if (v.is_number()) return Value(v.as_int());
    try {
      return Value(static_cast<int64_t>(std::stoll(py_strip(v.to_str(), true, true, nullptr))));
    } catch (const std::exception&) {
      return arg(a, kw, 0, "default", Value(0));
    }
  }
  if (name == "float") {
    if (v.is_number()) return Value(v.as_float());
    try {
      return Value(std::stod(v.to_str()));
    } catch (const std::exception&) {
      return arg(a, kw, 0, "default", Value(0.0));
    }
  }
  if (name == "abs") {
    if (v.kind() == Value::Kind::kFloat) return Value(std::fabs(v.as_float()));
    return Value(v.as_int() < 0 ? -v.as_int() : v.as_int());
  }
  if (name == "round") {
    int64_t prec = arg(a, kw, 0, "precision", Value(0)).as_int();
    double m = std::pow(10.0, static_cast<double>(prec));
    return Value(std::round(v.as_float() * m) / m);
  }
  if (name == "reverse") {
    if (v.is_string()) return get_slice(v, Value(), Value(), Value(-1));
    List items = iterate(v);
    std::reverse(items.begin(), items.end());
    return Value::list(items);
  }
  if (name == "sort") {
    List items = iterate(v);
    bool rev = arg(a, kw, 0, "reverse", Value(false)).truthy();
    Value attr = arg(a, kw, 2, "attribute", Value::none());
    auto key = [&](const Value& x) { return attr.is_none() ? x : attr_path(x, attr.to_str()); };
    std::stable_sort(items.begin(), items.end(), [&](const Value& x, const Value& y) {
      return rev ? less(key(y), key(x)) : less(key(x), key(y));
    });
    return Value::list(items);
  }
  if (name == "unique") {
    List out;
    for (const Value& x : iterate(v))
      if (std::none_of(out.begin(), out.end(), [&](const Value& y) { return equal(x, y); }))
        out.push_back(x);
    return Value::list(out);
  }
  if (name == "sum") {
    Value attr = arg(a, kw, 0, "attribute", Value::none());
    Value total = arg(a, kw, 1, "start", Value(0));
    for (const Value& x : iterate(v)) {
      Value y = attr.is_none() ? x : attr_path(x, attr.to_str());
      total = (total.kind() == Value::Kind::kFloat || y.kind() == Value::Kind::kFloat)
                  ? Value(total.as_float() + y.as_float())
                  : Value(total.as_int() + y.as_int());
    }
    return total;
  }
  if (name == "min" || name == "max") {
    List items = iterate(v);
    if (items.empty()) return Value::undefined("No aggregated item, sequence was empty.");
    Value best = items[0];
    for (const Value& x : items)
      if (name == "min" ? less(x, best) : less(best, x)) best = x;
    return best;
  }
  if (name == "indent") {
    Value width = arg(a, kw, 0, "width", Value(4));
    std::string pad =
        width.is_string() ? width.str() : std::string(static_cast<size_t>(width.as_int()), ' ');
    return Value(indent_text(v.to_str(), pad, arg(a, kw, 1, "first", Value(false)).truthy(),
                             arg(a, kw, 2, "blank", Value(false)).truthy()));
  }
  type_error("no filter named '" + name + "'");
}

}  // namespace reef::jinja
