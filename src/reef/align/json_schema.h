// A small JSON Schema validator (a draft 2020-12 subset) for the `json` reward of `reef align
// grpo`: does a completion's JSON have the shape the task asks for. Supported keywords:
//
//   type (string, number, integer, boolean, object, array, null, or a list of them), enum, const,
//   properties, patternProperties, required, additionalProperties (bool or schema),
//   items (schema), minItems, maxItems, minimum, maximum, exclusiveMinimum, exclusiveMaximum
//   (numbers, as in 2020-12), minLength, maxLength (in Unicode code points), pattern (an
//   ECMAScript regex searched anywhere in the string, as the spec says), anyOf, oneOf, allOf,
//   not, and local references ("$ref": "#/$defs/name", as pydantic writes them).
//
// Unknown keywords are ignored, as the spec says. Schemas are boolean or objects; a malformed
// schema (a keyword of the wrong type, a bad regex, a reference that does not resolve) is refused
// when the JsonSchema is built, so validation never meets one.
#pragma once

#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>
#include <string>

namespace reef {

class JsonSchema {
 public:
  // Throws reef::Error (kUsage) naming the JSON pointer of the first malformed keyword.
  explicit JsonSchema(nlohmann::ordered_json schema);
  JsonSchema(const JsonSchema&) = delete;  // the compiled regexes point into schema_
  JsonSchema& operator=(const JsonSchema&) = delete;

  // Whether `instance` is valid; when not and `why` is given, the first failure (the instance
  // location and the keyword, e.g. "/age: 150 is above the maximum 120").
  bool validate(const nlohmann::ordered_json& instance, std::string* why = nullptr) const;

  const nlohmann::ordered_json& schema() const { return schema_; }

 private:
  bool check(const nlohmann::ordered_json& schema, const nlohmann::ordered_json& instance,
             const std::string& where, std::string* why, int depth) const;
  void compile(const nlohmann::ordered_json& schema, const std::string& pointer);
  const std::regex& regex_of(const std::string& pattern) const;

  nlohmann::ordered_json schema_;
  std::map<std::string, std::regex> regexes_;         // pattern and patternProperties, by source
  std::set<const nlohmann::ordered_json*> compiled_;  // subschemas checked (a $ref may loop)
};

}  // namespace reef
