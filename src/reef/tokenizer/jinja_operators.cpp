// Implementation of jinja_operators.h: CPython's rules for int/float/str/list operands.
#include "reef/tokenizer/jinja_operators.h"

#include <cmath>

namespace reef::jinja {

// Python's arithmetic on two values; op is one of + - * / // % **.
Value arithmetic(const std::string& op, const Value& a, const Value& b) {
  auto bad = [&]() -> Value {
    throw EvalError("unsupported operand type(s) for " + op + ": '" + a.type_name() + "' and '" +
                    b.type_name() + "'");
  };
  if (op == "+") {
    if (a.is_string() && b.is_string()) return Value(a.str() + b.str());
    if (a.is_list() && b.is_list()) {
      List out = a.items();
      out.insert(out.end(), b.items().begin(), b.items().end());
      return Value::list(out, a.is_tuple());
    }
  }
  if (op == "*") {
    const Value* seq = a.is_string() || a.is_list()   ? &a
                       : b.is_string() || b.is_list() ? &b
                                                      : nullptr;
    const Value* n = seq == &a ? &b : &a;
    if (seq && n->is_int()) {
      if (seq->is_string()) {
        std::string out;
        for (int64_t i = 0; i < n->as_int(); ++i) out += seq->str();
        return Value(out);
      }
      List out;
      for (int64_t i = 0; i < n->as_int(); ++i)
        out.insert(out.end(), seq->items().begin(), seq->items().end());
      return Value::list(out);
    }
  }
  if (!a.is_number() || !b.is_number()) return bad();
  const bool ints = a.is_int() && b.is_int();
  if (op == "+") return ints ? Value(a.as_int() + b.as_int()) : Value(a.as_float() + b.as_float());
  if (op == "-") return ints ? Value(a.as_int() - b.as_int()) : Value(a.as_float() - b.as_float());
  if (op == "*") return ints ? Value(a.as_int() * b.as_int()) : Value(a.as_float() * b.as_float());
  if ((op == "/" || op == "//" || op == "%") && b.as_float() == 0)
    throw EvalError(ints && op != "/" ? "integer division or modulo by zero" : "division by zero");
  if (op == "/") return Value(a.as_float() / b.as_float());
  if (op == "//") {
    if (ints) {
      int64_t q = a.as_int() / b.as_int();
      if ((a.as_int() % b.as_int() != 0) && ((a.as_int() < 0) != (b.as_int() < 0))) --q;
      return Value(q);
    }
    return Value(std::floor(a.as_float() / b.as_float()));
  }
  if (op == "%") {
    if (ints) {
      int64_t r = a.as_int() % b.as_int();
      if (r != 0 && ((r < 0) != (b.as_int() < 0))) r += b.as_int();
      return Value(r);
    }
    double r = std::fmod(a.as_float(), b.as_float());
    if (r != 0 && ((r < 0) != (b.as_float() < 0))) r += b.as_float();
    return Value(r);
  }
  if (op == "**") {
    if (ints && b.as_int() >= 0) {
      int64_t r = 1;
      for (int64_t i = 0; i < b.as_int(); ++i) r *= a.as_int();
      return Value(r);
    }
    return Value(std::pow(a.as_float(), b.as_float()));
  }
  return bad();
}

bool contains(const Value& container, const Value& item) {
  if (container.is_string()) {
    if (!item.is_string())
      throw EvalError("'in <string>' requires string as left operand, not " + item.type_name());
    return container.str().find(item.str()) != std::string::npos;
  }
  if (container.is_dict()) return item.is_string() && container.dict().find(item.str()) != nullptr;
  if (container.is_undefined()) throw EvalError("argument of type 'Undefined' is not iterable");
  if (!container.is_list())
    throw EvalError("argument of type '" + container.type_name() + "' is not iterable");
  for (const Value& x : container.items())
    if (equal(x, item)) return true;
  return false;
}

}  // namespace reef::jinja
