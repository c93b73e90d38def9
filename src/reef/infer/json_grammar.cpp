// JSON Schema to the grammar constrained decoding reads (see json_constraint.h): the schema
// subset's compilation, references, the tool-call sequences, the shortest document lengths.
#include <fmt/format.h>

#include <map>
#include <set>

#include "reef/base/error.h"
#include "reef/infer/json_constraint.h"
#include "reef/infer/json_grammar_node.h"

namespace reef {

using json = nlohmann::json;

namespace {

using Node = JsonGrammar::Node;
using json_grammar::kBig;

const std::set<std::string> kAnnotations = {"title",    "description", "default",  "examples",
                                            "$schema",  "$id",         "format",   "strict",
                                            "$comment", "readOnly",    "writeOnly"};

}  // namespace

JsonGrammar::~JsonGrammar() = default;

class GrammarBuilder {
 public:
  GrammarBuilder(JsonGrammar& g, const json& root) : g_(g), root_(root) {
    any_ = make(Node::kAny);
    any_->min_bytes = 1;
  }

  Node* make(Node::Kind k) {
    g_.nodes_.push_back(std::make_unique<Node>());
    g_.nodes_.back()->kind = k;
    return g_.nodes_.back().get();
  }

  const Node* any() const { return any_; }

  const Node* build(const json& s, const std::string& ptr) {
    if (s.is_boolean()) {
      if (s.get<bool>()) return any_;
      usage_error("{}: the schema 'false' admits no value", where(ptr));
    }
    if (!s.is_object()) usage_error("{}: a schema must be an object or a boolean", where(ptr));
    static const std::set<std::string> known = {
        "type",       "properties", "required", "additionalProperties",
        "items",      "minItems",   "maxItems", "minLength",
        "maxLength",  "enum",       "const",    "anyOf",
        "oneOf",      "allOf",      "$ref",     "$defs",
        "definitions"};
    for (const auto& [k, v] : s.items()) {
      if (!known.count(k) && !kAnnotations.count(k))
        usage_error("{}/{}: the keyword '{}' is not supported by constrained decoding", where(ptr),
                    k, k);
    }
    auto constraints = [&](std::initializer_list<const char*> except) {
      int n = 0;
      for (const auto& [k, v] : s.items()) {
        if (kAnnotations.count(k) || k == "$defs" || k == "definitions") continue;
        if (std::find_if(except.begin(), except.end(), [&](const char* e) { return k == e; }) ==
            except.end())
          ++n;
      }
      return n;
    };
    if (s.contains("$ref")) {
      if (constraints({"$ref"}) > 0)
        usage_error("{}: '$ref' beside other keywords is not supported", where(ptr));
      return ref(s["$ref"], ptr + "/$ref");
    }
    if (s.contains("allOf")) {
      const json& all = s["allOf"];
      if (!all.is_array() || all.size() != 1 || constraints({"allOf"}) > 0)
        usage_error("{}/allOf: only one schema alone is supported", where(ptr));
      return build(all[0], ptr + "/allOf/0");
    }
    for (const char* key : {"anyOf", "oneOf"}) {
      if (!s.contains(key)) continue;
      const json& opts = s[key];
      if (!opts.is_array() || opts.empty())
        usage_error("{}/{}: expected a non-empty array of schemas", where(ptr), key);
      if (constraints({key}) > 0)
        usage_error("{}: '{}' beside other keywords is not supported", where(ptr), key);
      Node* n = make(Node::kAnyOf);
      for (size_t i = 0; i < opts.size(); ++i)
        n->options.push_back(build(opts[i], fmt::format("{}/{}/{}", ptr, key, i)));
      return n;
    }
    if (s.contains("enum") || s.contains("const")) {
      Node* n = make(Node::kLiterals);
      if (s.contains("const")) {
        n->literals.push_back(s["const"].dump());
      } else {
        if (!s["enum"].is_array() || s["enum"].empty())
          usage_error("{}/enum: expected a non-empty array", where(ptr));
        for (const auto& v : s["enum"]) n->literals.push_back(v.dump());
      }
      return n;
    }
    if (s.contains("type") && s["type"].is_array()) {
      Node* n = make(Node::kAnyOf);
      for (const auto& t : s["type"]) {
        json one = s;
        one["type"] = t;
        n->options.push_back(build(one, ptr));
      }
      if (n->options.empty()) usage_error("{}/type: an empty list of types", where(ptr));
      return n;
    }
    std::string type;
    if (s.contains("type")) {
      if (!s["type"].is_string()) usage_error("{}/type: expected a string or a list", where(ptr));
      type = s["type"].get<std::string>();
    } else if (s.contains("properties") || s.contains("additionalProperties") ||
               s.contains("required")) {
      type = "object";
    } else if (s.contains("items") || s.contains("minItems") || s.contains("maxItems")) {
      type = "array";
    } else if (s.contains("minLength") || s.contains("maxLength")) {
      type = "string";
    } else {
      return any_;
    }
    if (type == "object") return object(s, ptr);
    if (type == "array") {
      Node* n = make(Node::kArray);
      n->items = s.contains("items") ? build(s["items"], ptr + "/items") : any_;
      n->min_items = count(s, "minItems", ptr, 0);
      n->max_items = count(s, "maxItems", ptr, -1);
      if (n->max_items >= 0 && n->max_items < n->min_items)
        usage_error("{}: maxItems is below minItems", where(ptr));
      return n;
    }
    if (type == "string") {
      Node* n = make(Node::kString);
      n->min_len = count(s, "minLength", ptr, 0);
      n->max_len = count(s, "maxLength", ptr, -1);
      if (n->max_len >= 0 && n->max_len < n->min_len)
        usage_error("{}: maxLength is below minLength", where(ptr));
      return n;
    }
    if (type == "number") return make(Node::kNumber);
    if (type == "integer") return make(Node::kInteger);
    if (type == "boolean" || type == "null") {
      Node* n = make(Node::kLiterals);
      n->literals = type == "null" ? std::vector<std::string>{"null"}
                                   : std::vector<std::string>{"true", "false"};
      return n;
    }
    usage_error("{}/type: unknown type '{}'", where(ptr), type);
  }

  // The shortest document of each node (fixed point over references).
  void compute_min_bytes() {
    for (auto& n : g_.nodes_)
      if (n->min_bytes < 0) n->min_bytes = kBig;
    for (bool changed = true; changed;) {
      changed = false;
      for (auto& n : g_.nodes_) {
        const int64_t m = min_of(*n);
        if (m < n->min_bytes) n->min_bytes = m, changed = true;
      }
    }
  }

 private:
  static std::string where(const std::string& ptr) {
    return ptr.empty() ? "schema" : "schema" + ptr;
  }

  static int64_t count(const json& s, const char* key, const std::string& ptr, int64_t dflt) {
    if (!s.contains(key)) return dflt;
    if (!s[key].is_number_integer() || s[key].get<int64_t>() < 0)
      usage_error("{}/{}: expected a non-negative integer", where(ptr), key);
    return s[key].get<int64_t>();
  }

  const Node* object(const json& s, const std::string& ptr) {
    Node* n = make(Node::kObject);
    if (s.contains("properties")) {
      if (!s["properties"].is_object())
        usage_error("{}/properties: expected an object", where(ptr));
      for (const auto& [k, v] : s["properties"].items()) {
        if (k.find_first_of("\"\\") != std::string::npos || k.empty())
          usage_error("{}/properties: the key '{}' needs escaping (not supported)", where(ptr), k);
        for (unsigned char c : k)
          if (c < 0x20) usage_error("{}/properties: a key holds a control character", where(ptr));
        n->keys.push_back(k);
        n->values.push_back(build(v, ptr + "/properties/" + k));
        n->required.push_back(false);
      }
    }
    if (n->keys.size() > 64) usage_error("{}: more than 64 properties", where(ptr));
    if (s.contains("required")) {
      if (!s["required"].is_array()) usage_error("{}/required: expected an array", where(ptr));
      for (const auto& r : s["required"]) {
        if (!r.is_string()) usage_error("{}/required: expected strings", where(ptr));
        auto it = std::find(n->keys.begin(), n->keys.end(), r.get<std::string>());
        if (it == n->keys.end())
          usage_error("{}/required: '{}' is not in properties (not supported)", where(ptr),
                      r.get<std::string>());
        n->required[static_cast<size_t>(it - n->keys.begin())] = true;
      }
    }
    const json add = s.contains("additionalProperties") ? s["additionalProperties"] : json(true);
    if (!(add.is_boolean() && !add.get<bool>()))
      n->additional = build(add, ptr + "/additionalProperties");
    return n;
  }

  const Node* ref(const json& r, const std::string& ptr) {
    if (!r.is_string()) usage_error("{}: expected a string", where(ptr));
    const std::string target = r.get<std::string>();
    if (auto it = refs_.find(target); it != refs_.end()) return it->second;
    std::string path;
    for (const char* prefix : {"#/$defs/", "#/definitions/"}) {
      if (target.rfind(prefix, 0) == 0) path = target.substr(1);
    }
    if (path.empty())
      usage_error("{}: only local references (#/$defs/NAME) are supported, got '{}'", where(ptr),
                  target);
    json::json_pointer jp(path);
    if (!root_.contains(jp)) usage_error("{}: '{}' does not resolve", where(ptr), target);
    // A placeholder first, so that recursive references resolve to it.
    Node* placeholder = make(Node::kAnyOf);
    refs_[target] = placeholder;
    placeholder->options.push_back(build(root_.at(jp), path));
    return placeholder;
  }

  int64_t min_of(const Node& n) const {
    auto add = [](int64_t a, int64_t b) { return std::min(kBig, a + b); };
    switch (n.kind) {
      case Node::kAny:
      case Node::kNumber:
      case Node::kInteger:
        return 1;
      case Node::kString:
        return 2 + n.min_len;
      case Node::kLiterals: {
        int64_t m = kBig;
        for (const auto& l : n.literals) m = std::min<int64_t>(m, static_cast<int64_t>(l.size()));
        return m;
      }
      case Node::kAnyOf: {
        int64_t m = kBig;
        for (const Node* o : n.options) m = std::min(m, o->min_bytes);
        return m;
      }
      case Node::kSequence: {
        int64_t m = 0;
        for (const Node* o : n.options) m = add(m, o->min_bytes);
        return m;
      }
      case Node::kArray: {
        int64_t m = 2;
        for (int64_t i = 0; i < n.min_items; ++i) m = add(m, add(n.items->min_bytes, i > 0));
        return m;
      }
      case Node::kObject: {
        int64_t m = 2, k = 0;
        for (size_t i = 0; i < n.keys.size(); ++i) {
          if (!n.required[i]) continue;
          m = add(m, add(static_cast<int64_t>(n.keys[i].size()) + 3 + (k++ > 0),
                         n.values[i]->min_bytes));
        }
        return m;
      }
    }
    return kBig;
  }

  JsonGrammar& g_;
  const json& root_;
  Node* any_ = nullptr;
  std::map<std::string, const Node*> refs_;
};

void JsonGrammar::finish(GrammarBuilder& b) {
  // The generic nodes an Any value expands to.
  Node* any_object = b.make(Node::kObject);
  any_object->additional = b.any();
  any_object_ = any_object;
  Node* any_array = b.make(Node::kArray);
  any_array->items = b.any();
  any_array_ = any_array;
  any_string_ = b.make(Node::kString);
  any_number_ = b.make(Node::kNumber);
  Node* lit = b.make(Node::kLiterals);
  lit->literals = {"true", "false", "null"};
  any_literal_ = lit;
  b.compute_min_bytes();
  if (root_->min_bytes >= kBig) usage_error("schema: no finite document satisfies it");
}

std::shared_ptr<const JsonGrammar> JsonGrammar::any_object() {
  return from_schema(json{{"type", "object"}});
}

std::shared_ptr<const JsonGrammar> JsonGrammar::from_schema(const json& schema) {
  std::shared_ptr<JsonGrammar> g(new JsonGrammar());
  GrammarBuilder b(*g, schema);
  g->root_ = b.build(schema, "");
  g->finish(b);
  return g;
}

std::shared_ptr<const JsonGrammar> JsonGrammar::wrapped(const std::vector<json>& schemas,
                                                        const std::string& before,
                                                        const std::string& after, bool repeat) {
  if (schemas.empty()) usage_error("tool calls: no schema");
  std::shared_ptr<JsonGrammar> g(new JsonGrammar());
  // Each schema's $refs resolve against that schema.
  std::vector<const Node*> docs;
  std::vector<std::unique_ptr<GrammarBuilder>> builders;
  for (size_t i = 0; i < schemas.size(); ++i) {
    builders.push_back(std::make_unique<GrammarBuilder>(*g, schemas[i]));
    docs.push_back(builders.back()->build(schemas[i], fmt::format("[{}]", i)));
  }
  GrammarBuilder& b = *builders.front();
  Node* alt = b.make(Node::kAnyOf);
  alt->options = docs;
  Node* seq = b.make(Node::kSequence);
  seq->repeat = repeat;
  for (const std::string* lit : {&before, static_cast<const std::string*>(nullptr), &after}) {
    if (!lit) {
      seq->options.push_back(alt);
    } else if (!lit->empty()) {
      Node* l = b.make(Node::kLiterals);
      l->literals = {*lit};
      l->raw = true;
      seq->options.push_back(l);
    }
  }
  g->root_ = seq;
  g->finish(b);
  return g;
}

int64_t JsonGrammar::min_bytes() const { return root_->min_bytes; }

}  // namespace reef
