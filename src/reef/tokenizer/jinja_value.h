// The values a chat template computes with, with Python's semantics (jinja2 runs on Python):
// undefined, None, bool, int, float, str, list, dict (insertion-ordered), namespace and callables.
// Lists and dicts are shared by reference as in Python, so a namespace() set inside a loop is seen
// after it. Printing, equality, truthiness and json.dumps follow CPython, because the rendered
// text must be byte-identical to transformers' apply_chat_template.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

namespace reef::jinja {

// A failure while evaluating (Python's TypeError, UndefinedError, ...). The interpreter adds the
// template name, line and column before it reaches the caller as a reef::Error.
class EvalError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Value;
using List = std::vector<Value>;
using Kwargs = std::vector<std::pair<std::string, Value>>;
using Function = std::function<Value(const List& args, const Kwargs& kwargs)>;

// A Python dict with string keys, in insertion order (templates iterate it and tojson prints it).
class Dict {
 public:
  const Value* find(const std::string& key) const;
  void set(const std::string& key, Value v);
  const std::vector<std::pair<std::string, Value>>& items() const { return items_; }
  size_t size() const { return items_.size(); }

 private:
  std::vector<std::pair<std::string, Value>> items_;
};

class Value {
 public:
  enum class Kind { kUndefined, kNone, kBool, kInt, kFloat, kString, kList, kDict, kFunction };

  Value() = default;  // undefined
  static Value undefined(std::string name = "") {
    Value v;
    v.str_ = std::move(name);
    return v;
  }
  static Value none() { return Value(Kind::kNone); }
  Value(bool b) : kind_(Kind::kBool), int_(b) {}
  Value(int v) : kind_(Kind::kInt), int_(v) {}
  Value(int64_t v) : kind_(Kind::kInt), int_(v) {}
  Value(double v) : kind_(Kind::kFloat), float_(v) {}
  Value(std::string s) : kind_(Kind::kString), str_(std::move(s)) {}
  Value(const char* s) : kind_(Kind::kString), str_(s) {}
  static Value list(List items = {}, bool tuple = false);
  static Value from_dict(Dict d = {}, bool is_namespace = false);
  static Value function(std::string name, Function f);
  // JSON (ordered or not) to values: objects keep their key order.
  static Value from_json(const nlohmann::ordered_json& j);

  Kind kind() const { return kind_; }
  bool is_undefined() const { return kind_ == Kind::kUndefined; }
  bool is_none() const { return kind_ == Kind::kNone; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt || kind_ == Kind::kBool; }  // bool is an int
  bool is_number() const { return is_int() || kind_ == Kind::kFloat; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_tuple() const { return kind_ == Kind::kList && tuple_; }
  bool is_dict() const { return kind_ == Kind::kDict; }
  bool is_namespace() const { return kind_ == Kind::kDict && namespace_; }
  bool is_function() const { return kind_ == Kind::kFunction; }

  int64_t as_int() const { return kind_ == Kind::kFloat ? static_cast<int64_t>(float_) : int_; }
  double as_float() const { return kind_ == Kind::kFloat ? float_ : static_cast<double>(int_); }
  const std::string& str() const { return str_; }  // the string, or the undefined's name
  const List& items() const { return *list_; }
  List& mutable_items() const { return *list_; }
  const Dict& dict() const { return *dict_; }
  Dict& mutable_dict() const { return *dict_; }
  const Function& func() const { return *func_; }

  bool truthy() const;
  // Python str(): what {{ value }} prints ("" for undefined).
  std::string to_str() const;
  // Python repr(): how a value prints inside a list or dict.
  std::string repr() const;
  // Python's type name, for error messages.
  std::string type_name() const;
  // json.dumps(value, ensure_ascii=False, indent, separators, sort_keys) as transformers'
  // tojson filter calls it; indent < 0 means None.
  std::string to_json(int indent = -1, const std::string& item_sep = "",
                      const std::string& key_sep = "", bool sort_keys = false,
                      bool ensure_ascii = false) const;

 private:
  explicit Value(Kind k) : kind_(k) {}
  void dump_json(std::string& out, int indent, int depth, const std::string& item_sep,
                 const std::string& key_sep, bool sort_keys, bool ascii) const;

  Kind kind_ = Kind::kUndefined;
  bool tuple_ = false, namespace_ = false;
  int64_t int_ = 0;
  double float_ = 0;
  std::string str_;
  std::shared_ptr<List> list_;
  std::shared_ptr<Dict> dict_;
  std::shared_ptr<Function> func_;
};

// Python ==, with 1 == 1.0 == True and deep list/dict comparison.
bool equal(const Value& a, const Value& b);
// Python <; throws (as TypeError would) for values that do not order.
bool less(const Value& a, const Value& b);
// Python float repr (shortest round trip: 1.0, 0.1, 1e-05, 1e+16, inf, nan).
std::string float_repr(double d);
// Python repr of a str: quotes chosen as CPython does, escapes for control characters.
std::string string_repr(const std::string& s);

// Code-point helpers: Python indexes and measures str by code points, not bytes.
std::vector<std::string> code_points(const std::string& s);
size_t code_point_count(const std::string& s);
// Python's str.isspace for one code point (Unicode White_Space as CPython defines it).
bool is_python_space(const std::string& cp);
// str.strip/lstrip/rstrip: `chars` null means whitespace (str.isspace).
std::string py_strip(const std::string& s, bool left, bool right, const std::string* chars);

}  // namespace reef::jinja
