// Tests for align/json_schema.h: every supported keyword passes what it allows and fails what it
// does not, naming the instance location and the keyword; unknown keywords are ignored; a
// malformed schema is refused when built; a $ref cycle ends in a failure, not a hang.
#include "reef/align/json_schema.h"

#include <gtest/gtest.h>

#include <string>

#include "reef/base/error.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

ojson j(const char* text) { return ojson::parse(text); }

// Whether `instance` validates; a failure's reason must contain `why_part`.
void expect_valid(const char* schema, const char* instance) {
  JsonSchema s(j(schema));
  std::string why;
  EXPECT_TRUE(s.validate(j(instance), &why)) << schema << " rejects " << instance << ": " << why;
}

void expect_invalid(const char* schema, const char* instance, const std::string& why_part) {
  JsonSchema s(j(schema));
  std::string why;
  EXPECT_FALSE(s.validate(j(instance), &why)) << schema << " accepts " << instance;
  EXPECT_NE(why.find(why_part), std::string::npos) << "reason: " << why << ", wanted " << why_part;
}

std::string schema_error(const char* schema) {
  try {
    JsonSchema s(j(schema));
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  ADD_FAILURE() << schema << " was accepted";
  return "";
}

TEST(JsonSchema, Types) {
  expect_valid(R"({"type": "string"})", R"("x")");
  expect_invalid(R"({"type": "string"})", "1", "is not of type \"string\"");
  expect_valid(R"({"type": "number"})", "1.5");
  expect_valid(R"({"type": "number"})", "3");
  expect_invalid(R"({"type": "number"})", "true", "not of type");
  expect_valid(R"({"type": "integer"})", "3");
  expect_valid(R"({"type": "integer"})", "3.0");  // a zero fraction is an integer (the spec)
  expect_invalid(R"({"type": "integer"})", "3.5", "not of type \"integer\"");
  expect_valid(R"({"type": "boolean"})", "false");
  expect_invalid(R"({"type": "boolean"})", "0", "not of type");
  expect_valid(R"({"type": "object"})", "{}");
  expect_invalid(R"({"type": "object"})", "[]", "not of type");
  expect_valid(R"({"type": "array"})", "[1]");
  expect_invalid(R"({"type": "array"})", "{}", "not of type");
  expect_valid(R"({"type": "null"})", "null");
  expect_invalid(R"({"type": "null"})", "\"\"", "not of type");
  expect_valid(R"({"type": ["string", "null"]})", "null");
  expect_invalid(R"({"type": ["string", "null"]})", "2", R"(not of type ["string","null"])");
}

TEST(JsonSchema, ObjectKeywords) {
  const char* person = R"({
    "type": "object",
    "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
    "required": ["name"],
    "additionalProperties": false})";
  expect_valid(person, R"({"name": "Ada", "age": 36})");
  expect_valid(person, R"({"name": "Ada"})");
  expect_invalid(person, R"({"age": 36})", "(root): missing the required property \"name\"");
  expect_invalid(person, R"({"name": 7})", "/name: 7 is not of type \"string\"");
  expect_invalid(person, R"({"name": "Ada", "age": -1})", "/age: -1 is below the minimum 0");
  expect_invalid(person, R"({"name": "Ada", "x": 1})", "property \"x\" is not allowed");

  const char* typed_extra =
      R"({"properties": {"a": {}}, "additionalProperties": {"type": "number"}})";
  expect_valid(typed_extra, R"({"a": "s", "b": 2})");
  expect_invalid(typed_extra, R"({"a": "s", "b": "2"})", "/b: \"2\" is not of type \"number\"");

  const char* patterned = R"({"patternProperties": {"^x_": {"type": "integer"}},
                              "additionalProperties": false})";
  expect_valid(patterned, R"({"x_1": 1, "x_2": 2})");
  expect_invalid(patterned, R"({"x_1": "one"})", "/x_1:");
  expect_invalid(patterned, R"({"y": 1})", "property \"y\" is not allowed");
  // Keywords of one kind of value leave the others alone.
  expect_valid(typed_extra, R"("not an object")");
}

TEST(JsonSchema, ArrayKeywords) {
  const char* list = R"({"type": "array", "items": {"type": "string"}, "minItems": 1,
                          "maxItems": 2})";
  expect_valid(list, R"(["a"])");
  expect_valid(list, R"(["a", "b"])");
  expect_invalid(list, "[]", "0 items, fewer than minItems 1");
  expect_invalid(list, R"(["a", "b", "c"])", "3 items, more than maxItems 2");
  expect_invalid(list, R"(["a", 2])", "/1: 2 is not of type \"string\"");
}

TEST(JsonSchema, EnumAndConstCompareJsonValues) {
  expect_valid(R"({"enum": ["red", 1, null]})", "null");
  expect_valid(R"({"enum": ["red", 1, null]})", "1.0");  // 1 == 1.0 as JSON numbers
  expect_invalid(R"({"enum": ["red", 1, null]})", R"("blue")", "is not one of");
  // Objects are equal whatever their key order.
  expect_valid(R"({"const": {"a": 1, "b": [2]}})", R"({"b": [2], "a": 1})");
  expect_invalid(R"({"const": {"a": 1, "b": [2]}})", R"({"a": 1, "b": [3]})", "is not the const");
  expect_invalid(R"({"const": 0})", "false", "is not the const");
}

TEST(JsonSchema, NumberBounds) {
  const char* inclusive = R"({"minimum": 1, "maximum": 3})";
  expect_valid(inclusive, "1");
  expect_valid(inclusive, "3");
  expect_invalid(inclusive, "0.5", "is below the minimum 1");
  expect_invalid(inclusive, "3.5", "is above the maximum 3");
  const char* exclusive = R"({"exclusiveMinimum": 1, "exclusiveMaximum": 3})";
  expect_valid(exclusive, "2");
  expect_invalid(exclusive, "1", "is not above the exclusiveMinimum 1");
  expect_invalid(exclusive, "3", "is not below the exclusiveMaximum 3");
  expect_valid(inclusive, R"("a string is no number")");
}

TEST(JsonSchema, StringKeywordsCountCodePoints) {
  const char* word = R"({"minLength": 2, "maxLength": 5, "pattern": "^[a-zé]+$"})";
  expect_valid(word, R"("héllo")");  // 5 code points, 6 bytes
  expect_invalid(word, R"("a")", "is shorter than minLength 2");
  expect_invalid(word, R"("hélloo")", "is longer than maxLength 5");
  expect_invalid(word, R"("Hello")", "does not match the pattern");
  // pattern is searched anywhere, not anchored.
  expect_valid(R"({"pattern": "b+"})", R"("abbc")");
  expect_invalid(R"({"pattern": "^b"})", R"("abbc")", "does not match the pattern");
}

TEST(JsonSchema, Combinators) {
  const char* any = R"({"anyOf": [{"type": "string"}, {"minimum": 10}]})";
  expect_valid(any, R"("s")");
  expect_valid(any, "12");
  expect_invalid(any, "5", "matches none of the anyOf schemas");

  const char* one = R"({"oneOf": [{"type": "integer"}, {"minimum": 10}]})";
  expect_valid(one, "5");     // only the first
  expect_valid(one, "10.5");  // only the second
  expect_invalid(one, "12", "matches 2 of the oneOf schemas");
  expect_invalid(one, "2.5", "matches 0 of the oneOf schemas");

  const char* all = R"({"allOf": [{"type": "integer"}, {"minimum": 10}]})";
  expect_valid(all, "12");
  expect_invalid(all, "5", "below the minimum 10");

  expect_valid(R"({"not": {"type": "null"}})", "0");
  expect_invalid(R"({"not": {"type": "null"}})", "null", "matches the schema of not");
}

TEST(JsonSchema, BooleanSchemasRefsAndUnknownKeywords) {
  expect_valid("true", R"({"anything": [1]})");
  expect_invalid("false", "1", "the schema false allows nothing");
  expect_invalid(R"({"properties": {"a": false}})", R"({"a": 1})", "/a: the schema false");
  // Local references, as pydantic writes them.
  const char* refs = R"({"$defs": {"Point": {"type": "object", "required": ["x", "y"]}},
                         "type": "array", "items": {"$ref": "#/$defs/Point"}})";
  expect_valid(refs, R"([{"x": 1, "y": 2}])");
  expect_invalid(refs, R"([{"x": 1}])", "/0: missing the required property \"y\"");
  // Unknown keywords are ignored (format and multipleOf are not in the subset).
  expect_valid(R"({"type": "string", "format": "email", "x-note": 3})", R"("not an email")");
  expect_valid(R"({"multipleOf": 7})", "3");
  // A reference cycle that consumes nothing fails instead of recursing forever.
  JsonSchema cycle(j(R"({"$ref": "#"})"));
  std::string why;
  EXPECT_FALSE(cycle.validate(j("1"), &why));
  EXPECT_NE(why.find("nests too deep"), std::string::npos) << why;
}

TEST(JsonSchema, MalformedSchemasAreRefusedWhenBuilt) {
  EXPECT_NE(schema_error(R"({"type": "strin"})").find("/type: expected a type name"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"properties": {"a": {"minimum": "3"}}})")
                .find("/properties/a/minimum: expected a number"),
            std::string::npos);
  EXPECT_NE(schema_error(R"({"pattern": "("})").find("/pattern: invalid regex"), std::string::npos);
  EXPECT_NE(schema_error(R"({"$ref": "#/$defs/missing"})").find("/$ref"), std::string::npos);
  EXPECT_NE(schema_error(R"({"required": "a"})").find("/required"), std::string::npos);
  EXPECT_NE(schema_error(R"({"anyOf": []})").find("/anyOf"), std::string::npos);
  EXPECT_NE(schema_error(R"({"maxLength": -1})").find("/maxLength"), std::string::npos);
  EXPECT_NE(schema_error("5").find("a schema must be an object or a boolean"), std::string::npos);
  EXPECT_NE(schema_error(R"({"items": {"type": 7}})").find("/items/type"), std::string::npos);
}

}  // namespace
}  // namespace reef
