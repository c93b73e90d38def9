// What a chat template can do to a value besides operators: jinja2's attribute and item lookup
// (with the str/dict/list methods templates call, such as startswith, split, strip, get, items),
// slicing, the filters (trim, length, tojson as transformers defines it, items, join, map,
// selectattr, default, ...) and the tests (defined, none, string, mapping, equalto, ...).
// Failures throw EvalError with Python's wording; the interpreter adds the template position.
#pragma once

#include <string>

#include "reef/tokenizer/jinja_value.h"

namespace reef::jinja {

// obj.name: a dict key or a bound method of a str, dict or list; undefined when missing; an
// EvalError on an undefined object (as jinja2's default Undefined).
Value get_attribute(const Value& obj, const std::string& name);
// obj[key]: dict key, list or str index (negative counts from the end); undefined when missing.
Value get_item(const Value& obj, const Value& key);
// obj[start:stop:step] with Python's slice semantics on lists and str (by code points).
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);

Value apply_filter(const std::string& name, const Value& value, const List& args,
                   const Kwargs& kwargs);
bool apply_test(const std::string& name, const Value& value, const List& args);

// Python iteration: list items, dict keys, str code points, nothing for undefined.
List iterate(const Value& v);
// Python's len().
int64_t length_of(const Value& v);

}  // namespace reef::jinja
