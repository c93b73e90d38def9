// The JSON Schema recognizer behind constrained decoding: it accepts valid documents and refuses
// invalid ones byte by byte, its shortest-completion estimate never exceeds what a real document
// still needs, and a decoder that picks random allowed bytes within a token budget always ends
// with a document that parses and validates (checked by align/json_schema.h's validator, which
// is why this infer/ test lives in the align binary), the prefix-tree mask equalling the plain
// one at every step.
#include "reef/infer/json_constraint.h"

#include <gtest/gtest.h>

#include <random>

#include "reef/align/json_schema.h"
#include "reef/base/error.h"

namespace reef {
namespace {

using json = nlohmann::json;

const json kPerson = json::parse(R"({
  "type": "object",
  "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 8},
    "age": {"type": "integer"},
    "tags": {"type": "array", "items": {"enum": ["a", "bb", 3]}, "minItems": 1, "maxItems": 3},
    "pet": {"anyOf": [{"$ref": "#/$defs/Pet"}, {"type": "null"}]},
    "score": {"type": ["number", "boolean"]}
  },
  "required": ["name", "age", "tags"],
  "additionalProperties": false,
  "$defs": {"Pet": {"type": "object", "properties": {"kind": {"const": "cat"}},
                    "required": ["kind"], "additionalProperties": false}}
})");

bool accepts(const json& schema, const std::string& doc) {
  JsonMatcher m(JsonGrammar::from_schema(schema));
  return m.feed(doc) && m.complete();
}

TEST(JsonConstraint, AcceptsValidAndRefusesInvalidDocuments) {
  for (const char* ok : {
           R"({"name":"bo","age":3,"tags":["a"]})",
           R"({"age": -12, "name": "x\"y\u00e9", "tags": [3, "bb", "a"], "pet": null})",
           R"({"name":"bo","age":0,"tags":["bb"],"pet":{"kind":"cat"},"score":1.5e-3})",
           R"({"name":"bo","age":7,"tags":["a"],"score":true})",
       })
    EXPECT_TRUE(accepts(kPerson, ok)) << ok;
  for (const char* bad : {
           R"({"name":"bo","age":3})",                           // tags required
           R"({"name":"bo","age":3,"tags":[]})",                 // minItems
           R"({"name":"bo","age":3,"tags":["a","a","a","a"]})",  // maxItems
           R"({"name":"","age":3,"tags":["a"]})",                // minLength
           R"({"name":"123456789","age":3,"tags":["a"]})",       // maxLength
           R"({"name":"bo","age":3.5,"tags":["a"]})",            // integer
           R"({"name":"bo","age":03,"tags":["a"]})",             // leading zero
           R"({"name":"bo","age":3,"tags":["c"]})",              // enum
           R"({"name":"bo","age":3,"tags":["a"],"x":1})",        // additionalProperties
           R"({"name":"bo","name":"b","age":3,"tags":["a"]})",   // duplicate key
           R"({"name":"bo","age":3,"tags":["a"],"pet":{"kind":"dog"}})",
           R"({"name":"bo","age":3,"tags":["a"],"score":"1"})",
           R"({"name":"bo","age":3,"tags":["a"]} x)",  // after the document
           R"({"name":"b)"
           "\n"
           R"(","age":3,"tags":["a"]})",  // raw control character
       })
    EXPECT_FALSE(accepts(kPerson, bad)) << bad;
  // json_object mode: any object, nothing else.
  auto any = JsonGrammar::any_object();
  JsonMatcher m(any);
  EXPECT_TRUE(m.feed(R"({"a": [1, {"b": null}, "c"], "d": {}})") && m.complete());
  JsonMatcher arr(any);
  EXPECT_FALSE(arr.feed("[1]"));
}

TEST(JsonConstraint, ShortestCompletionNeverOverestimates) {
  const std::string doc = R"({"age":12,"name":"bob","tags":["bb",3],"pet":{"kind":"cat"}})";
  auto g = JsonGrammar::from_schema(kPerson);
  JsonMatcher start(g);
  EXPECT_EQ(start.min_remaining(), g->min_bytes());
  // The shortest valid document: a one-character name, a one-digit age, the 1-byte enum value.
  EXPECT_EQ(g->min_bytes(),
            static_cast<int64_t>(std::string(R"({"name":"x","age":0,"tags":[3]})").size()));
  JsonMatcher m(g);
  for (size_t i = 0; i < doc.size(); ++i) {
    ASSERT_TRUE(m.feed(doc.substr(i, 1))) << doc.substr(0, i + 1);
    EXPECT_LE(m.min_remaining(), static_cast<int64_t>(doc.size() - i - 1)) << doc.substr(0, i + 1);
  }
  EXPECT_EQ(m.min_remaining(), 0);
  EXPECT_TRUE(m.closed());
}

TEST(JsonConstraint, RandomAllowedBytesWithinABudgetAlwaysGiveValidDocuments) {
  // A byte vocabulary (ids 0..255) plus eos 256, as a byte-level tokenizer has.
  std::vector<std::string> vocab;
  for (int b = 0; b < 256; ++b) vocab.push_back(std::string(1, static_cast<char>(b)));
  vocab.push_back("");
  const int32_t eos = 256;
  // Multi-byte tokens too, for the prefix tree to share starts between.
  for (const char* t : {"{\"", "\":", "\",\"", "na", "name", "\"name\":\"", "tags", "[3", "], ",
                        "true", "nu", "0.", "e+", "\\u00", "\xc3\xa9", "ab\"c"})
    vocab.push_back(t);
  const TokenTrie trie(vocab);
  const std::vector<json> schemas = {
      kPerson,
      json::parse(R"({"type":"object"})"),
      json::parse(R"({"type":"array","items":{"type":"number"},"minItems":2})"),
      json::parse(R"({"type":"object","properties":{"a":{"type":"object","properties":
          {"b":{"type":"array","items":{"type":"string","maxLength":3}}},"required":["b"]}},
          "required":["a"]})"),
  };
  std::mt19937 rng(3);
  for (size_t si = 0; si < schemas.size(); ++si) {
    auto g = JsonGrammar::from_schema(schemas[si]);
    JsonSchema validator(nlohmann::ordered_json::parse(schemas[si].dump()));
    for (int run = 0; run < 40; ++run) {
      const int64_t budget = g->min_bytes() + static_cast<int64_t>(rng() % 40);
      JsonMatcher m(g);
      std::string out;
      for (int64_t used = 0;; ++used) {
        auto allowed = allowed_tokens(m, vocab, eos, budget - used - 1);
        ASSERT_EQ(trie.allowed(m, eos, budget - used - 1), allowed) << "after " << out;
        std::vector<int> ids;
        for (size_t i = 0; i < allowed.size(); ++i)
          if (allowed[i]) ids.push_back(static_cast<int>(i));
        ASSERT_FALSE(ids.empty()) << "schema " << si << " stuck after "
                                  << json(out).dump(-1, 0, false, json::error_handler_t::replace)
                                  << " used " << used << " of " << budget;
        // Prefer eos a little so documents end before the budget sometimes.
        const int id = allowed[eos] && rng() % 4 == 0 ? eos : ids[rng() % ids.size()];
        if (id == eos) break;
        ASSERT_LT(used, budget) << out;
        out += vocab[static_cast<size_t>(id)];
        ASSERT_TRUE(m.feed(vocab[static_cast<size_t>(id)]));
        if (used + 1 == budget) break;
      }
      ASSERT_TRUE(m.complete()) << out;
      auto doc = nlohmann::ordered_json::parse(out, nullptr, false);
      ASSERT_FALSE(doc.is_discarded())
          << "schema " << si << ": "
          << json(out).dump(-1, 0, false, json::error_handler_t::replace);
      std::string why;
      EXPECT_TRUE(validator.validate(doc, &why)) << "schema " << si << ": " << out << ": " << why;
    }
  }
}

TEST(JsonConstraint, WrappedDocumentsForToolCalls) {
  const std::vector<json> calls = {
      json::parse(
          R"({"type":"object","properties":{"name":{"const":"f"},"arguments":{"type":"object",
          "properties":{"x":{"type":"integer"}},"required":["x"],"additionalProperties":false}},
          "required":["name","arguments"],"additionalProperties":false})"),
      json::parse(
          R"({"type":"object","properties":{"name":{"const":"g"},"arguments":{"type":"object"}},
          "required":["name","arguments"],"additionalProperties":false})")};
  auto once = JsonGrammar::wrapped(calls, "<tool_call>\n", "\n</tool_call>", false);
  auto many = JsonGrammar::wrapped(calls, "<tool_call>\n", "\n</tool_call>", true);
  const std::string f = "<tool_call>\n{\"name\":\"f\",\"arguments\":{\"x\":1}}\n</tool_call>";
  const std::string g = "<tool_call>\n{\"name\":\"g\",\"arguments\":{}}\n</tool_call>";
  JsonMatcher a(once);
  ASSERT_TRUE(a.feed(f));
  EXPECT_TRUE(a.complete());
  EXPECT_TRUE(a.closed());  // one call: nothing may follow
  JsonMatcher b(many);
  ASSERT_TRUE(b.feed(f + "\n" + g));
  EXPECT_TRUE(b.complete());
  EXPECT_FALSE(b.closed());  // another call may follow
  JsonMatcher c(once);
  EXPECT_FALSE(c.feed("<tool_call>\n{\"name\":\"h\""));  // no such tool
  JsonMatcher d(once);
  EXPECT_FALSE(d.feed("<tool_call>\n{\"name\":\"f\",\"arguments\":{\"y\":1}}"));
  JsonMatcher e(many);
  EXPECT_EQ(e.min_remaining(), many->min_bytes());
  EXPECT_EQ(many->min_bytes(), static_cast<int64_t>(g.size()));
}

TEST(JsonConstraint, UnsupportedKeywordsAreRefusedNamingThem) {
  try {
    JsonGrammar::from_schema(json::parse(
        R"({"type":"object","properties":{"zip":{"type":"string","pattern":"^[0-9]+$"}}})"));
    ADD_FAILURE() << "pattern accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("schema/properties/zip/pattern"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(JsonGrammar::from_schema(json::parse(R"({"$ref": "http://x/y.json"})")), Error);
  EXPECT_THROW(JsonGrammar::from_schema(json::parse(R"({"type": "tuple"})")), Error);
  EXPECT_THROW(JsonGrammar::from_schema(json::parse(R"({"required": ["a"]})")), Error);
}

}  // namespace
}  // namespace reef
