// The config's fields as a flat runtime table (dotted key, type, pointer, comment), built from
// the structs' visit() lists, plus the shared pieces of loading: typed assignment from YAML
// nodes with one-line errors, YAML text of a value, and did-you-mean suggestions. Internal to
// the config layer; other layers use config.h.
#pragma once

#include <yaml-cpp/yaml.h>

#include <string>
#include <vector>

#include "reef/config/config.h"

namespace reef::config_detail {

enum class FieldType { kInt, kDouble, kBool, kString, kStringList };

struct Field {
  std::string key;      // "train.max_steps"
  std::string section;  // "train"
  std::string name;     // "max_steps"
  FieldType type;
  void* ptr;  // into the Config the table was built from
  const char* comment;
};

// Every field of `cfg`, in section then visit() order. Pointers refer into `cfg`.
std::vector<Field> fields_of(Config& cfg);
std::vector<Field> fields_of(const Config& cfg);  // pointers must only be read

// Section names in order ("run", "model", ...).
const std::vector<std::string>& section_names();

// The field with this dotted key, or nullptr.
const Field* find_field(const std::vector<Field>& fields, const std::string& key);

// "an integer", "a number", "true or false", "a string", "a list of strings".
const char* expected_text(FieldType t);
const char* type_name(FieldType t);  // int, float, bool, string, list

// Sets the field from a YAML node; throws a usage error naming key and `source` on a type
// mismatch. A null node sets "" / {} for strings and lists and is a type error otherwise.
void assign_node(const Field& f, const YAML::Node& node, const std::string& source);

// Sets the field from command-line text: strings are taken literally unless they start like
// YAML (quotes, [, {); everything else is parsed as a YAML scalar or flow list first.
void assign_text(const Field& f, const std::string& text, const std::string& source);

// The field's value as YAML text that reads back to the same value ("0.0003", "[a, b]", "\"\"").
std::string value_yaml(const Field& f);
// A double as its shortest round-trip text, always recognisable as a float ("1.0", "1e-05").
std::string format_double(double v);
// A string as a YAML scalar, quoted only when plain text would read back differently.
std::string quote_yaml(const std::string& s);

// How a node reads in a message: the scalar text, "a list", "a map" or "nothing".
std::string describe_node(const YAML::Node& node);

// The nearest of `candidates` to `word` (edit distance; a shared last dotted component counts
// as close), or "" when none is near enough to suggest.
std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates);
size_t edit_distance(const std::string& a, const std::string& b);

// All dotted keys, then all section names: the candidates for unknown-key suggestions.
std::vector<std::string> key_candidates();

}  // namespace reef::config_detail
