// The Jinja syntax tree and its parser, for the subset of Jinja that Hugging Face chat templates
// use: text, {{ expr }}, if/elif/else, for (tuple targets, `if` filter, else), set (names, tuples,
// namespace attributes, {% set %}..{% endset %}), macros, {% filter %}, break/continue,
// transformers' {% generation %} block, and expressions with Jinja's precedence: conditional
// expressions, or/and/not, comparisons, in/not in, is-tests, + - ~ * / // % **, unary -,
// filters, attribute and item access, slices, calls with keyword arguments and literals.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "reef/tokenizer/jinja_lexer.h"
#include "reef/tokenizer/jinja_value.h"

namespace reef::jinja {

struct Expr;
using ExprPtr = std::shared_ptr<Expr>;

struct Expr {
  enum class Kind {
    kLiteral,    // value
    kName,       // name
    kList,       // args: items
    kTuple,      // args: items
    kDict,       // args: key, value, key, value, ...
    kAttr,       // args[0].name
    kItem,       // args[0][args[1]]
    kSlice,      // args[0][args[1]:args[2]:args[3]] (null parts omitted)
    kCall,       // args[0](args[1..], kwargs)
    kFilter,     // args[0] | name(args[1..], kwargs)
    kTest,       // args[0] is [not] name(args[1..])
    kUnary,      // name ("not", "-", "+") args[0]
    kBinary,     // args[0] name args[1]: arithmetic, ~, and, or, in, not in
    kCompare,    // args[0] ops[0] args[1] ops[1] args[2] ... (chained)
    kCondition,  // args[1] if args[0] else args[2] (args[2] null: undefined)
  };
  Kind kind;
  std::string name;
  Value value;
  std::vector<ExprPtr> args;
  std::vector<std::pair<std::string, ExprPtr>> kwargs;
  std::vector<std::string> ops;  // kCompare operators
  bool negated = false;          // kTest: `is not`
  int line = 0, column = 0;
};

struct Stmt;
using StmtPtr = std::shared_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct Stmt {
  enum class Kind {
    kText,         // text
    kOutput,       // {{ expr }}
    kIf,           // conditions[i] -> bodies[i]; bodies[conditions.size()] is the else, if any
    kFor,          // for names in expr [if condition]: bodies[0]; bodies[1] the else, if any
    kSet,          // set names (or names[0].attr) = expr
    kSetBlock,     // set names[0] %} bodies[0] {% endset
    kMacro,        // macro text(names = conditions as defaults, null when none) bodies[0]
    kFilterBlock,  // filter: expr is a kFilter whose args[0] is null; bodies[0] is the input
    kGeneration,   // {% generation %} bodies[0] {% endgeneration %}
    kBreak,
    kContinue,
  };
  Kind kind;
  std::string text, attr;
  std::vector<std::string> names;
  ExprPtr expr, condition;
  std::vector<ExprPtr> conditions;
  std::vector<Body> bodies;
  int line = 0, column = 0;
};

// Parses a template; throws reef::Error "<name>:LINE:COL: template syntax error: ..." on bad input.
Body parse_template(const std::string& source, const std::string& name,
                    const LexOptions& options = {});

}  // namespace reef::jinja
