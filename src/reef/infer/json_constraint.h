// Constrained decoding to JSON: a JSON Schema (the subset OpenAI's strict structured outputs and
// pydantic use) compiled to a recognizer that reads the output byte by byte and knows, at every
// point, whether the bytes so far can still become a valid document and how many bytes the
// shortest completion needs. The engine (infer/engine.h) masks every token whose bytes the
// recognizer refuses, or after which the shortest completion no longer fits in the tokens left,
// so a constrained sequence always ends as a complete, valid document within max_tokens (each
// needed byte exists as a token in byte-level and byte-fallback vocabularies).
//
// Supported keywords: type (string, number, integer, boolean, null, object, array, or a list),
// properties, required, additionalProperties (false, true or a schema), items, minItems,
// maxItems, minLength, maxLength, enum, const, anyOf, oneOf (as anyOf), allOf with one schema,
// $ref to "#/$defs/..." or "#/definitions/...", and the annotations title, description,
// default, examples, $schema, $id, format, strict. Any other keyword (pattern, minimum, ...) is
// refused when compiling, naming it: a constraint Reef cannot enforce is never silently dropped.
// Output is compact apart from at most kMaxWhitespace whitespace bytes in a row between tokens;
// integers have at most 16 digits, fractions 16, exponents 2 (every number fits a double); keys are
// written without escapes when the schema names them.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

namespace reef {

class GrammarBuilder;

class JsonGrammar {
 public:
  // Any JSON object (response_format json_object).
  static std::shared_ptr<const JsonGrammar> any_object();
  // A schema; throws reef::Error(kUsage) naming the JSON pointer of an unsupported or malformed
  // keyword.
  static std::shared_ptr<const JsonGrammar> from_schema(const nlohmann::json& schema);
  // Tool calls: `before` + a JSON document valid under one of `schemas` + `after`, once, or
  // repeated (whitespace between) when `repeat`. Errors as from_schema, naming schemas[i].
  static std::shared_ptr<const JsonGrammar> wrapped(const std::vector<nlohmann::json>& schemas,
                                                    const std::string& before,
                                                    const std::string& after, bool repeat);

  struct Node;
  const Node* root() const { return root_; }
  // The shortest document the schema admits, in bytes.
  int64_t min_bytes() const;
  ~JsonGrammar();

  // What a value of any type expands to (internal to the recognizer).
  const Node *any_object_ = nullptr, *any_array_ = nullptr, *any_string_ = nullptr,
             *any_number_ = nullptr, *any_literal_ = nullptr;

 private:
  JsonGrammar() = default;
  void finish(GrammarBuilder& b);  // the generic nodes, the shortest lengths, the check
  std::vector<std::unique_ptr<Node>> nodes_;
  const Node* root_ = nullptr;
  friend class GrammarBuilder;
};

inline constexpr int kMaxWhitespace = 4;

// The recognizer state: cheap to copy (a few small stacks).
class JsonMatcher {
 public:
  explicit JsonMatcher(std::shared_ptr<const JsonGrammar> grammar);
  // Reads `bytes`; false (and the state unusable) when they cannot continue a valid document.
  bool feed(std::string_view bytes);
  // A whole document has been read (it may still be extended, e.g. a number's digits).
  bool complete() const;
  // A whole document has been read and nothing may follow it.
  bool closed() const;
  // The fewest bytes that complete the document from here (0 when complete()).
  int64_t min_remaining() const;
  // Inside a string with no length bounds left to meet (one reading, between characters): any
  // run of plain characters (no quote, backslash or control byte; whole UTF-8 characters)
  // continues it and leaves min_remaining() unchanged.
  bool in_free_string() const;

  // One open construct of the document being read.
  struct Frame {
    enum Type : uint8_t { kValue, kObject, kArray, kString, kNumber, kLiteral, kSequence };
    Type type = kValue;
    const JsonGrammar::Node* node = nullptr;
    int state = 0;
    int64_t count = 0;  // array: items started; string: code points; number: digits of the part
    std::string text;   // object: the key being read; literal: the bytes matched
    uint64_t seen = 0;  // object: declared keys present
    int key = -1;       // object: the declared key being read or valued (-1: another key)
    std::vector<std::string> extra;  // object: other keys present
    int utf8_more = 0;  // string or key: continuation bytes still due in this character
    uint8_t utf8_lo = 0x80, utf8_hi = 0xBF;  // the range of the next continuation byte
  };
  // One reading of the bytes so far (anyOf keeps several alive).
  struct Thread {
    std::vector<Frame> stack;
    int ws = 0;  // whitespace bytes in a row
  };

 private:
  std::shared_ptr<const JsonGrammar> grammar_;
  std::vector<Thread> threads_;  // alternatives still alive (anyOf)
};

// The token mask for the next step: allowed[id] for every id of a vocabulary whose tokens read
// as `token_bytes[id]` (empty for special tokens, which are refused; eos is allowed exactly when
// the document is complete), given that at most `tokens_left` more tokens may follow this one.
std::vector<bool> allowed_tokens(const JsonMatcher& matcher,
                                 const std::vector<std::string>& token_bytes, int32_t eos_id,
                                 int64_t tokens_left);

// A vocabulary's token texts as a prefix tree, built once per tokenizer, so that tokens sharing a
// start are read once: the same mask as allowed_tokens() (the plain reference, which the tests
// compare it with), at the cost of the starts the document can take rather than of the whole
// vocabulary.
class TokenTrie {
 public:
  explicit TokenTrie(const std::vector<std::string>& token_bytes);
  std::vector<bool> allowed(const JsonMatcher& matcher, int32_t eos_id, int64_t tokens_left) const;

 private:
  struct Node {
    std::vector<std::pair<unsigned char, int32_t>> next;  // byte -> child node
    std::vector<int32_t> ids;                             // tokens that end here
  };
  void walk(int32_t node, const JsonMatcher& m, int64_t tokens_left,
            std::vector<bool>& allowed) const;
  std::vector<Node> nodes_;
  std::vector<std::string> token_bytes_;
  std::vector<bool> plain_;  // plain string characters only (see JsonMatcher::in_free_string)
};

}  // namespace reef
