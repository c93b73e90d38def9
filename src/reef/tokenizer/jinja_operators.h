// The binary operators of Jinja expressions with Python's semantics (templates run on Python):
// arithmetic (+ - * / // % ** on numbers, + and * on str and list) and membership (`in`).
// Failures throw EvalError with Python's wording.
#pragma once

#include <string>

#include "reef/tokenizer/jinja_value.h"

namespace reef::jinja {

// Python's arithmetic on two values; op is one of + - * / // % **.
Value arithmetic(const std::string& op, const Value& a, const Value& b);
// Python's `item in container` for str (substring), dict (key) and list.
bool contains(const Value& container, const Value& item);

}  // namespace reef::jinja
