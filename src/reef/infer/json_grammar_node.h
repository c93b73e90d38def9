// The compiled form of a JSON Schema shared by the grammar builder (json_grammar.cpp) and the
// recognizer (json_constraint.cpp); internal to infer/.
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "reef/infer/json_constraint.h"

namespace reef {

struct JsonGrammar::Node {
  enum Kind { kAny, kObject, kArray, kString, kNumber, kInteger, kLiterals, kAnyOf, kSequence };
  Kind kind = kAny;
  // object: declared keys, their schemas and whether required; other keys' schema (null: none)
  std::vector<std::string> keys;
  std::vector<const Node*> values;
  std::vector<bool> required;
  const Node* additional = nullptr;
  // array
  const Node* items = nullptr;
  int64_t min_items = 0, max_items = -1;
  // string (code points)
  int64_t min_len = 0, max_len = -1;
  // literals: compact JSON texts
  std::vector<std::string> literals;
  // anyOf; sequence: the parts in order (repeat: the whole sequence again, any number of times)
  std::vector<const Node*> options;
  bool repeat = false;
  bool raw = false;        // literals: plain text of a sequence, no whitespace before it
  int64_t min_bytes = -1;  // the shortest document of this schema
};

namespace json_grammar {

// "No finite document" for the shortest-length computations.
inline constexpr int64_t kBig = std::numeric_limits<int64_t>::max() / 4;

}  // namespace json_grammar
}  // namespace reef
