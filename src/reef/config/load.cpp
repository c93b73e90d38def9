// Loading a config: YAML file -> flat (dotted key, value, origin) entries, command-line
// overrides -> the same entries, then preset first, file keys, command-line keys, validation.
// Every problem is one usage error naming the key, where it came from and what was expected,
// raised before anything is applied to a run. Also config_to_yaml, the inverse.
#include <map>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/config/config.h"
#include "reef/config/fields.h"

namespace reef {
namespace {

using config_detail::Field;
using config_detail::FieldType;

constexpr const char* kCommandLine = "command line";
constexpr const char* kDefault = "default";

// One assignment from a file or the command line, not yet applied.
struct Entry {
  std::string key;     // dotted
  std::string origin;  // "recipes/x.yaml:12" or "command line"
  YAML::Node node;     // file values (and command-line section maps)
  std::string text;    // command-line values, typed by the field
  bool from_text = false;
};

bool is_section(const std::string& name) {
  for (const auto& s : config_detail::section_names())
    if (s == name) return true;
  return false;
}

bool is_key(const std::string& key) {
  for (const auto& k : config_keys())
    if (k.key == key) return true;
  return false;
}

std::string join(const std::vector<std::string>& v, const char* sep = ", ") {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? sep : "") + v[i];
  return out;
}

std::vector<std::string> keys_of_section(const std::string& section) {
  std::vector<std::string> out;
  for (const auto& k : config_keys())
    if (k.key.compare(0, section.size() + 1, section + ".") == 0)
      out.push_back(k.key.substr(section.size() + 1));
  return out;
}

[[noreturn]] void unknown_key(const std::string& key, const std::string& origin) {
  std::string guess = config_detail::did_you_mean(key, config_detail::key_candidates());
  if (!guess.empty()) usage_error("unknown key '{}' ({}); did you mean '{}'?", key, origin, guess);
  std::string section = key.substr(0, key.find('.'));
  if (is_section(section) && key.find('.') != std::string::npos) {
    usage_error("unknown key '{}' ({}); keys of '{}': {}", key, origin, section,
                join(keys_of_section(section)));
  }
  usage_error("unknown key '{}' ({}); sections: {}", key, origin,
              join(config_detail::section_names()));
}

[[noreturn]] void unknown_section(const std::string& name, const std::string& origin) {
  std::string guess = config_detail::did_you_mean(name, config_detail::key_candidates());
  if (!guess.empty()) {
    usage_error("unknown section '{}' ({}); did you mean '{}'?", name, origin, guess);
  }
  usage_error("unknown section '{}' ({}); sections: {}", name, origin,
              join(config_detail::section_names()));
}

[[noreturn]] void not_a_section(const std::string& name, const std::string& got,
                                const std::string& origin) {
  usage_error("{}: expected a section (a map of keys such as {}.{}), got {} ({})", name, name,
              keys_of_section(name).front(), got, origin);
}

// Adds `section`'s keys from a map node; `origin_of` gives each key's origin.
template <class OriginOf>
void add_section_entries(const std::string& section, const YAML::Node& map, OriginOf origin_of,
                         std::vector<Entry>& out) {
  for (auto it = map.begin(); it != map.end(); ++it) {
    std::string key = section + "." + it->first.Scalar();
    std::string origin = origin_of(it->first);
    if (!is_key(key)) unknown_key(key, origin);
    out.push_back(Entry{key, origin, it->second, "", false});
  }
}

std::vector<Entry> parse_file(const std::string& text, const std::string& source) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    usage_error("malformed YAML ({}:{}): {}", source, e.mark.line + 1, e.msg);
  }
  auto origin_of = [&](const YAML::Node& n) {
    return fmt::format("{}:{}", source, n.Mark().line + 1);
  };
  std::vector<Entry> out;
  if (!root.IsDefined() || root.IsNull()) return out;  // an empty file: defaults
  if (!root.IsMap()) {
    usage_error("{}: expected a map of sections ({}: ...) at the top level, got {} ({})", source,
                config_detail::section_names().front(), config_detail::describe_node(root),
                origin_of(root));
  }
  for (auto it = root.begin(); it != root.end(); ++it) {
    const std::string name = it->first.Scalar();
    const std::string origin = origin_of(it->first);
    if (name.find('.') != std::string::npos) {  // `train.max_steps: 5` at the top level
      if (!is_key(name)) unknown_key(name, origin);
      out.push_back(Entry{name, origin, it->second, "", false});
      continue;
    }
    if (!is_section(name)) unknown_section(name, origin);
    const YAML::Node& body = it->second;
    if (body.IsNull()) continue;  // `train:` with nothing under it
    if (!body.IsMap()) not_a_section(name, config_detail::describe_node(body), origin);
    add_section_entries(name, body, origin_of, out);
  }
  // yaml-cpp keeps repeated keys; the second would silently win, so name both places.
  std::map<std::string, std::string> seen;
  for (const Entry& e : out) {
    auto [pos, fresh] = seen.emplace(e.key, e.origin);
    if (!fresh)
      usage_error("duplicate key '{}' ({}); already set at {}", e.key, e.origin, pos->second);
  }
  return out;
}

std::vector<Entry> parse_override(const std::string& assignment) {
  size_t eq = assignment.find('=');
  if (eq == std::string::npos) {
    usage_error("override '{}' has no '=' ({}); expected key=value, e.g. train.max_steps=50",
                assignment, kCommandLine);
  }
  std::string key = assignment.substr(0, eq);
  std::string value = assignment.substr(eq + 1);
  while (!key.empty() && key.back() == ' ') key.pop_back();
  while (!key.empty() && key.front() == ' ') key.erase(key.begin());
  if (key.empty()) {
    usage_error(
        "override '{}' has no key before '=' ({}); expected key=value, e.g. "
        "train.max_steps=50",
        assignment, kCommandLine);
  }
  std::vector<Entry> out;
  if (is_section(key)) {
    // `model={n_layers: 2, hidden_size: 64}` sets several keys; a plain value is a mistake.
    YAML::Node node;
    bool parsed = false;
    if (!value.empty() && value[0] == '{') {
      try {
        node = YAML::Load(value);
        parsed = node.IsMap();
      } catch (const YAML::Exception&) {
      }
    }
    if (!parsed) not_a_section(key, "'" + value + "'", kCommandLine);
    add_section_entries(
        key, node, [](const YAML::Node&) { return std::string(kCommandLine); }, out);
    return out;
  }
  if (!is_key(key)) unknown_key(key, kCommandLine);
  out.push_back(Entry{key, kCommandLine, YAML::Node(), value, true});
  return out;
}

void apply_entry(ResolvedConfig& rc, const std::vector<Field>& fields, const Entry& e) {
  const Field* f = config_detail::find_field(fields, e.key);
  if (e.from_text)
    config_detail::assign_text(*f, e.text, e.origin);
  else
    config_detail::assign_node(*f, e.node, e.origin);
  rc.origin[e.key] = e.origin;
}

void copy_value(const Field& from, const Field& to) {
  switch (from.type) {
    case FieldType::kInt:
      *static_cast<int64_t*>(to.ptr) = *static_cast<int64_t*>(from.ptr);
      break;
    case FieldType::kDouble:
      *static_cast<double*>(to.ptr) = *static_cast<double*>(from.ptr);
      break;
    case FieldType::kBool:
      *static_cast<bool*>(to.ptr) = *static_cast<bool*>(from.ptr);
      break;
    case FieldType::kString:
      *static_cast<std::string*>(to.ptr) = *static_cast<std::string*>(from.ptr);
      break;
    case FieldType::kStringList:
      *static_cast<std::vector<std::string>*>(to.ptr) =
          *static_cast<std::vector<std::string>*>(from.ptr);
      break;
  }
}

// Sets model.preset from `e`, undoes any earlier preset's keys, and applies the new preset to
// the keys still at their defaults: keys set by a file or the command line always win.
void apply_preset_entry(ResolvedConfig& rc, const std::vector<Field>& fields, const Entry& e) {
  Config defaults;
  auto default_fields = config_detail::fields_of(defaults);
  for (size_t i = 0; i < fields.size(); ++i) {
    std::string& origin = rc.origin[fields[i].key];
    if (origin.compare(0, 7, "preset ") == 0) {
      copy_value(default_fields[i], fields[i]);
      origin = kDefault;
    }
  }
  apply_entry(rc, fields, e);
  const std::string name = rc.config.model.preset;
  if (name.empty()) return;
  const auto& presets = model_presets();
  auto it = presets.find(name);
  if (it == presets.end()) {
    std::vector<std::string> names;
    for (const auto& [n, keys] : presets) names.push_back(n);
    std::string guess = config_detail::did_you_mean(name, names);
    usage_error("model.preset: unknown preset '{}' ({}); expected one of {}{}", name, e.origin,
                join(names), guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess));
  }
  const std::string origin = "preset " + name;
  for (const auto& [key, value] : it->second) {
    const Field* f = config_detail::find_field(fields, key);
    if (f == nullptr) fail("internal: preset {} sets unknown key {}", name, key);
    if (rc.origin[key] != kDefault) continue;
    config_detail::assign_text(*f, value, origin);
    rc.origin[key] = origin;
  }
}

ResolvedConfig defaults_with_origins() {
  ResolvedConfig rc;
  for (const auto& k : config_keys()) rc.origin[k.key] = kDefault;
  return rc;
}

}  // namespace

ResolvedConfig load_config_text(const std::string& yaml_text, const std::string& source,
                                const std::vector<std::string>& overrides) {
  std::vector<Entry> file_entries = parse_file(yaml_text, source);
  std::vector<Entry> cl_entries;
  for (const std::string& a : overrides) {
    for (Entry& e : parse_override(a)) cl_entries.push_back(std::move(e));
  }

  ResolvedConfig rc = defaults_with_origins();
  auto fields = config_detail::fields_of(rc.config);
  // The preset lays the base whatever its position: the last model.preset wins, and the
  // command line comes after the file.
  const Entry* preset = nullptr;
  for (const Entry& e : file_entries)
    if (e.key == "model.preset") preset = &e;
  for (const Entry& e : cl_entries)
    if (e.key == "model.preset") preset = &e;
  if (preset != nullptr) apply_preset_entry(rc, fields, *preset);

  for (const Entry& e : file_entries)
    if (e.key != "model.preset") apply_entry(rc, fields, e);
  for (const Entry& e : cl_entries)
    if (e.key != "model.preset") apply_entry(rc, fields, e);
  validate_config(rc.config, rc.origin);
  return rc;
}

ResolvedConfig load_config(const std::string& path, const std::vector<std::string>& overrides) {
  if (path.empty()) return load_config_text("", "", overrides);
  if (!path_exists(path)) usage_error("config file not found: {}", path);
  if (is_directory(path)) usage_error("config file is a directory: {}; expected a YAML file", path);
  return load_config_text(read_file(path), path, overrides);
}

void apply_override(ResolvedConfig& rc, const std::string& assignment) {
  auto fields = config_detail::fields_of(rc.config);
  // A hand-built ResolvedConfig may lack origins; a key nobody set is at its default.
  for (const Field& f : fields) {
    std::string& origin = rc.origin[f.key];
    if (origin.empty()) origin = kDefault;
  }
  for (const Entry& e : parse_override(assignment)) {
    if (e.key == "model.preset")
      apply_preset_entry(rc, fields, e);
    else
      apply_entry(rc, fields, e);
  }
}

std::string config_to_yaml(const Config& cfg, bool with_comments) {
  std::string out;
  std::string section;
  for (const Field& f : config_detail::fields_of(cfg)) {
    if (f.section != section) {
      if (!out.empty()) out += "\n";
      out += f.section + ":\n";
      section = f.section;
    }
    out += "  " + f.name + ": " + config_detail::value_yaml(f);
    if (with_comments) out += std::string("  # ") + f.comment;
    out += "\n";
  }
  return out;
}

}  // namespace reef
