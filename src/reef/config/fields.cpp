// The flat field table behind loading, overrides and printing: built from each section's
// visit() so a field is declared once, with typed parsing that rejects anything ambiguous
// (1.5 for an integer, yes/no for a bool) and printing that reads back to the same value.
#include "reef/config/fields.h"

#include <fmt/format.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>

#include "reef/base/error.h"

namespace reef::config_detail {
namespace {

struct FieldCollector {
  std::vector<Field>* out;
  std::string section;

  void add(const char* name, FieldType t, void* p, const char* comment) {
    out->push_back(Field{section + "." + name, section, name, t, p, comment});
  }
  void operator()(const char* n, int64_t& v, const char* c) { add(n, FieldType::kInt, &v, c); }
  void operator()(const char* n, double& v, const char* c) { add(n, FieldType::kDouble, &v, c); }
  void operator()(const char* n, bool& v, const char* c) { add(n, FieldType::kBool, &v, c); }
  void operator()(const char* n, std::string& v, const char* c) {
    add(n, FieldType::kString, &v, c);
  }
  void operator()(const char* n, std::vector<std::string>& v, const char* c) {
    add(n, FieldType::kStringList, &v, c);
  }
};

struct SectionCollector {
  std::vector<Field>* out;
  template <class S>
  void operator()(const char* name, S& section) {
    FieldCollector c{out, name};
    section.visit(c);
  }
};

struct SectionNameCollector {
  std::vector<std::string>* out;
  template <class S>
  void operator()(const char* name, S&) {
    out->push_back(name);
  }
};

bool parse_int(const std::string& s, int64_t& out) {
  size_t i = (!s.empty() && (s[0] == '+' || s[0] == '-')) ? 1 : 0;
  if (i == s.size()) return false;
  for (size_t j = i; j < s.size(); ++j)
    if (s[j] < '0' || s[j] > '9') return false;
  errno = 0;
  long long v = std::strtoll(s.c_str(), nullptr, 10);
  if (errno == ERANGE) return false;
  out = static_cast<int64_t>(v);
  return true;
}

bool parse_double(const std::string& s, double& out) {
  // YAML's spellings of the special values; plain "inf"/"nan" would be strings in YAML.
  if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf" || s == "+.Inf" || s == "+.INF") {
    out = HUGE_VAL;
    return true;
  }
  if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
    out = -HUGE_VAL;
    return true;
  }
  if (s == ".nan" || s == ".NaN" || s == ".NAN") {
    out = std::nan("");
    return true;
  }
  if (s.empty() || s.find_first_not_of("0123456789+-.eE") != std::string::npos) return false;
  if (s.find_first_of("0123456789") == std::string::npos) return false;
  char* end = nullptr;
  errno = 0;
  double v = std::strtod(s.c_str(), &end);
  // Overflow is an error; underflow to a subnormal or zero is a fine reading of tiny text.
  if (end != s.c_str() + s.size() || (errno == ERANGE && std::isinf(v))) return false;
  out = v;
  return true;
}

bool parse_bool(const std::string& s, bool& out) {
  if (s == "true" || s == "True" || s == "TRUE") {
    out = true;
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    out = false;
    return true;
  }
  return false;
}

[[noreturn]] void type_error(const Field& f, const YAML::Node& node, const std::string& source) {
  usage_error("{}: expected {}, got {} ({})", f.key, expected_text(f.type), describe_node(node),
              source);
}

std::string last_component(const std::string& key) {
  size_t dot = key.rfind('.');
  return dot == std::string::npos ? key : key.substr(dot + 1);
}

}  // namespace

std::vector<Field> fields_of(Config& cfg) {
  std::vector<Field> out;
  SectionCollector c{&out};
  cfg.visit_sections(c);
  return out;
}

std::vector<Field> fields_of(const Config& cfg) { return fields_of(const_cast<Config&>(cfg)); }

const std::vector<std::string>& section_names() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> out;
    Config cfg;
    SectionNameCollector c{&out};
    cfg.visit_sections(c);
    return out;
  }();
  return names;
}

const Field* find_field(const std::vector<Field>& fields, const std::string& key) {
  for (const Field& f : fields)
    if (f.key == key) return &f;
  return nullptr;
}

const char* expected_text(FieldType t) {
  switch (t) {
    case FieldType::kInt:
      return "an integer";
    case FieldType::kDouble:
      return "a number";
    case FieldType::kBool:
      return "true or false";
    case FieldType::kString:
      return "a string";
    case FieldType::kStringList:
      return "a list of strings";
  }
  return "?";
}

const char* type_name(FieldType t) {
  switch (t) {
    case FieldType::kInt:
      return "int";
    case FieldType::kDouble:
      return "float";
    case FieldType::kBool:
      return "bool";
    case FieldType::kString:
      return "string";
    case FieldType::kStringList:
      return "list";
  }
  return "?";
}

std::string describe_node(const YAML::Node& node) {
  if (!node.IsDefined() || node.IsNull()) return "nothing";
  if (node.IsSequence()) return "a list";
  if (node.IsMap()) return "a map";
  return "'" + node.Scalar() + "'";
}

void assign_node(const Field& f, const YAML::Node& node, const std::string& source) {
  switch (f.type) {
    case FieldType::kInt: {
      int64_t v;
      if (!node.IsScalar() || !parse_int(node.Scalar(), v)) type_error(f, node, source);
      *static_cast<int64_t*>(f.ptr) = v;
      return;
    }
    case FieldType::kDouble: {
      double v;
      if (!node.IsScalar() || !parse_double(node.Scalar(), v)) type_error(f, node, source);
      *static_cast<double*>(f.ptr) = v;
      return;
    }
    case FieldType::kBool: {
      bool v;
      if (!node.IsScalar() || !parse_bool(node.Scalar(), v)) type_error(f, node, source);
      *static_cast<bool*>(f.ptr) = v;
      return;
    }
    case FieldType::kString: {
      if (node.IsNull()) {
        static_cast<std::string*>(f.ptr)->clear();
      } else if (node.IsScalar()) {
        *static_cast<std::string*>(f.ptr) = node.Scalar();
      } else {
        type_error(f, node, source);
      }
      return;
    }
    case FieldType::kStringList: {
      std::vector<std::string> v;
      if (node.IsNull()) {
      } else if (node.IsScalar()) {
        v.push_back(node.Scalar());  // a single value is a one-element list
      } else if (node.IsSequence()) {
        for (const YAML::Node& item : node) {
          if (!item.IsScalar()) {
            usage_error("{}: expected a list of strings, got an item that is {} ({})", f.key,
                        describe_node(item), source);
          }
          v.push_back(item.Scalar());
        }
      } else {
        type_error(f, node, source);
      }
      *static_cast<std::vector<std::string>*>(f.ptr) = std::move(v);
      return;
    }
  }
}

void assign_text(const Field& f, const std::string& text, const std::string& source) {
  // Paths and names are taken as typed, so `run.dir=runs/a #1` keeps its '#'; quotes and
  // brackets opt into YAML.
  bool yaml_start = !text.empty() && std::string("\"'[{").find(text[0]) != std::string::npos;
  if (f.type == FieldType::kString && !yaml_start) {
    *static_cast<std::string*>(f.ptr) = text;
    return;
  }
  if (f.type == FieldType::kStringList && !yaml_start) {
    auto* v = static_cast<std::vector<std::string>*>(f.ptr);
    v->clear();
    if (!text.empty()) v->push_back(text);
    return;
  }
  YAML::Node node;
  try {
    node = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    usage_error("{}: expected {}, got '{}', which is not valid YAML: {} ({})", f.key,
                expected_text(f.type), text, e.msg, source);
  }
  assign_node(f, node, source);
}

std::string format_double(double v) {
  if (std::isnan(v)) return ".nan";
  if (std::isinf(v)) return v > 0 ? ".inf" : "-.inf";
  std::string s = fmt::format("{}", v);  // shortest text that reads back to the same double
  // YAML 1.1 readers (PyYAML) need a '.' to see a float: 1 -> 1.0, 1e-05 -> 1.0e-05.
  if (s.find('.') == std::string::npos) {
    size_t e = s.find('e');
    if (e == std::string::npos)
      s += ".0";
    else
      s.insert(e, ".0");
  }
  return s;
}

std::string quote_yaml(const std::string& s) {
  static const std::string kPlainFirst =
      "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./";
  static const std::string kPlainRest = kPlainFirst + "+-=@";
  bool plain = !s.empty() && kPlainFirst.find(s[0]) != std::string::npos &&
               s.find_first_not_of(kPlainRest) == std::string::npos && s != "null" && s != "Null" &&
               s != "NULL";
  if (plain) return s;
  std::string out = "\"";
  for (char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20)
          out += fmt::format("\\x{:02x}", static_cast<unsigned char>(c));
        else
          out += c;
    }
  }
  return out + "\"";
}

std::string value_yaml(const Field& f) {
  switch (f.type) {
    case FieldType::kInt:
      return fmt::format("{}", *static_cast<const int64_t*>(f.ptr));
    case FieldType::kDouble:
      return format_double(*static_cast<const double*>(f.ptr));
    case FieldType::kBool:
      return *static_cast<const bool*>(f.ptr) ? "true" : "false";
    case FieldType::kString:
      return quote_yaml(*static_cast<const std::string*>(f.ptr));
    case FieldType::kStringList: {
      std::string out = "[";
      const auto& v = *static_cast<const std::vector<std::string>*>(f.ptr);
      for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + quote_yaml(v[i]);
      return out + "]";
    }
  }
  return "";
}

size_t edit_distance(const std::string& a, const std::string& b) {
  // Optimal string alignment: insertions, deletions, substitutions and adjacent swaps.
  std::vector<std::vector<size_t>> d(a.size() + 1, std::vector<size_t>(b.size() + 1));
  for (size_t i = 0; i <= a.size(); ++i) d[i][0] = i;
  for (size_t j = 0; j <= b.size(); ++j) d[0][j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t cost = a[i - 1] == b[j - 1] ? 0 : 1;
      d[i][j] = std::min({d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1])
        d[i][j] = std::min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.size()][b.size()];
}

std::string did_you_mean(const std::string& word, const std::vector<std::string>& candidates) {
  std::string best;
  size_t best_score = SIZE_MAX;
  std::string leaf = last_component(word);
  for (const std::string& c : candidates) {
    size_t score = edit_distance(word, c);
    // `train.lr` means `optim.lr`: the right key in the wrong section is a near miss.
    if (c.find('.') != std::string::npos && last_component(c) == leaf && leaf.size() > 1)
      score = std::min<size_t>(score, 1);
    // `qwen3` means `qwen3-tiny` or `qwen3-0.6b`: a typed prefix is a near miss.
    if (word.size() >= 3 && c.size() > word.size() && c.compare(0, word.size(), word) == 0)
      score = std::min<size_t>(score, 2);
    if (score < best_score) {
      best_score = score;
      best = c;
    }
  }
  // Scaled by the last component: a long section prefix must not make distant keys "near".
  size_t threshold = std::max<size_t>(2, leaf.size() / 3);
  return best_score <= threshold ? best : "";
}

std::vector<std::string> key_candidates() {
  std::vector<std::string> out;
  for (const ConfigKey& k : config_keys()) out.push_back(k.key);
  for (const std::string& s : section_names()) out.push_back(s);
  return out;
}

}  // namespace reef::config_detail

namespace reef {

const std::vector<ConfigKey>& config_keys() {
  static const std::vector<ConfigKey> keys = [] {
    std::vector<ConfigKey> out;
    Config defaults;
    for (const auto& f : config_detail::fields_of(defaults)) {
      out.push_back(ConfigKey{f.key, config_detail::type_name(f.type), config_detail::value_yaml(f),
                              f.comment});
    }
    return out;
  }();
  return keys;
}

bool operator==(const Config& a, const Config& b) {
  auto fa = config_detail::fields_of(a);
  auto fb = config_detail::fields_of(b);
  for (size_t i = 0; i < fa.size(); ++i) {
    using config_detail::FieldType;
    const void* pa = fa[i].ptr;
    const void* pb = fb[i].ptr;
    bool same = false;
    switch (fa[i].type) {
      case FieldType::kInt:
        same = *static_cast<const int64_t*>(pa) == *static_cast<const int64_t*>(pb);
        break;
      case FieldType::kDouble: {
        double x = *static_cast<const double*>(pa), y = *static_cast<const double*>(pb);
        same = x == y || (std::isnan(x) && std::isnan(y));
        break;
      }
      case FieldType::kBool:
        same = *static_cast<const bool*>(pa) == *static_cast<const bool*>(pb);
        break;
      case FieldType::kString:
        same = *static_cast<const std::string*>(pa) == *static_cast<const std::string*>(pb);
        break;
      case FieldType::kStringList:
        same = *static_cast<const std::vector<std::string>*>(pa) ==
               *static_cast<const std::vector<std::string>*>(pb);
        break;
    }
    if (!same) return false;
  }
  return true;
}

}  // namespace reef
