// Recursive-descent parser for chat-template Jinja, with jinja2's grammar and precedence
// (jinja2/parser.py): condexpr > or > and > not > compare > + - > ~ > * / // % > ** > unary >
// primary with postfix (. [] ()) and filters/tests.
#include "reef/tokenizer/jinja_parser.h"

#include <algorithm>
#include <initializer_list>

#include "reef/base/error.h"

namespace reef::jinja {
namespace {

class Parser {
 public:
  Parser(std::vector<Token> tokens, std::string name)
      : t_(std::move(tokens)), name_(std::move(name)) {}

  Body parse_all() {
    std::string end;
    Body body = parse_body({}, &end);
    return body;
  }

 private:
  const Token& cur() const { return t_[i_]; }
  const Token& peek(size_t k = 1) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
  bool is_op(const char* op) const { return cur().kind == TokenKind::kOp && cur().text == op; }
  bool is_name(const char* n) const { return cur().kind == TokenKind::kName && cur().text == n; }
  bool skip_op(const char* op) {
    if (!is_op(op)) return false;
    ++i_;
    return true;
  }
  bool skip_name(const char* n) {
    if (!is_name(n)) return false;
    ++i_;
    return true;
  }
  void expect_op(const char* op) {
    if (!skip_op(op)) fail_at(cur(), std::string("expected '") + op + "', got " + describe(cur()));
  }
  std::string expect_name() {
    if (cur().kind != TokenKind::kName) fail_at(cur(), "expected a name, got " + describe(cur()));
    return t_[i_++].text;
  }
  void expect_block_end() {
    if (cur().kind != TokenKind::kBlockEnd)
      fail_at(cur(), "expected end of statement '%}', got " + describe(cur()));
    ++i_;
  }
  static std::string describe(const Token& t) {
    switch (t.kind) {
      case TokenKind::kEof:
        return "end of template";
      case TokenKind::kBlockEnd:
        return "'%}'";
      case TokenKind::kVarEnd:
        return "'}}'";
      case TokenKind::kString:
        return "string literal";
      default:
        return "'" + t.text + "'";
    }
  }
  [[noreturn]] void fail_at(const Token& t, const std::string& what) const {
    usage_error("{}:{}:{}: template syntax error: {}", name_, t.line, t.column, what);
  }

  // Statements until a block tag named in `ends` (its name is consumed and stored in *end).
  Body parse_body(std::initializer_list<const char*> ends, std::string* end) {
    Body body;
    while (true) {
      const Token& t = cur();
      if (t.kind == TokenKind::kEof) {
        if (ends.size() == 0) return body;
        fail_at(t, std::string("unexpected end of template, expected '") + *ends.begin() + "'");
      }
      if (t.kind == TokenKind::kText) {
        auto s = make_stmt(Stmt::Kind::kText, t);
        s->text = t.text;
        body.push_back(s);
        ++i_;
      } else if (t.kind == TokenKind::kVarBegin) {
        ++i_;
        auto s = make_stmt(Stmt::Kind::kOutput, t);
        s->expr = parse_tuple(true);
        if (cur().kind != TokenKind::kVarEnd)
          fail_at(cur(), "expected '}}', got " + describe(cur()));
        ++i_;
        body.push_back(s);
      } else if (t.kind == TokenKind::kBlockBegin) {
        const Token& kw = peek();
        if (kw.kind != TokenKind::kName) fail_at(kw, "expected a statement name");
        for (const char* e : ends)
          if (kw.text == e) {
            i_ += 2;
            *end = kw.text;
            return body;
          }
        i_ += 2;
        body.push_back(parse_statement(kw));
      } else {
        fail_at(t, "unexpected " + describe(t));
      }
    }
  }

  StmtPtr make_stmt(Stmt::Kind k, const Token& t) {
    auto s = std::make_shared<Stmt>();
    s->kind = k;
    s->line = t.line, s->column = t.column;
    return s;
  }

  StmtPtr parse_statement(const Token& kw) {
    const std::string& k = kw.text;
    std::string end;
    if (k == "if") {
      auto s = make_stmt(Stmt::Kind::kIf, kw);
      s->conditions.push_back(parse_tuple(false));
      expect_block_end();
      while (true) {
        s->bodies.push_back(parse_body({"elif", "else", "endif"}, &end));
        if (end == "elif") {
          s->conditions.push_back(parse_tuple(false));
          expect_block_end();
        } else if (end == "else") {
          expect_block_end();
          s->bodies.push_back(parse_body({"endif"}, &end));
          break;
        } else {
          break;
        }
      }
      expect_block_end();
      return s;
    }
    if (k == "for") {
      auto s = make_stmt(Stmt::Kind::kFor, kw);
      s->names = parse_targets();
      if (!skip_name("in")) fail_at(cur(), "expected 'in' in for loop, got " + describe(cur()));
      s->expr = parse_tuple(false);
      if (skip_name("if")) s->condition = parse_expression(true);
      if (is_name("recursive")) fail_at(cur(), "recursive for loops are not supported");
      expect_block_end();
      s->bodies.push_back(parse_body({"else", "endfor"}, &end));
      if (end == "else") {
        expect_block_end();
        s->bodies.push_back(parse_body({"endfor"}, &end));
      }
      expect_block_end();
      return s;
    }
    if (k == "set") {
      auto s = make_stmt(Stmt::Kind::kSet, kw);
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOp && peek().text == ".") {
        s->names.push_back(expect_name());
        ++i_;
        s->attr = expect_name();
      } else {
        s->names = parse_targets();
      }
      if (skip_op("=")) {
        s->expr = parse_tuple(true);
        expect_block_end();
        return s;
      }
      if (!s->attr.empty() || s->names.size() != 1) fail_at(cur(), "expected '=' in set");
      s->kind = Stmt::Kind::kSetBlock;
      expect_block_end();
      s->bodies.push_back(parse_body({"endset"}, &end));
      expect_block_end();
      return s;
    }
    if (k == "macro") {
      auto s = make_stmt(Stmt::Kind::kMacro, kw);
      s->text = expect_name();
      expect_op("(");
      while (!skip_op(")")) {
        if (!s->names.empty()) expect_op(",");
        if (skip_op(")")) break;
        s->names.push_back(expect_name());
        s->conditions.push_back(skip_op("=") ? parse_expression(true) : nullptr);
      }
      expect_block_end();
      s->bodies.push_back(parse_body({"endmacro"}, &end));
      expect_block_end();
      return s;
    }
    if (k == "filter") {
      auto s = make_stmt(Stmt::Kind::kFilterBlock, kw);
      s->expr = parse_filter(nullptr);
      expect_block_end();
      s->bodies.push_back(parse_body({"endfilter"}, &end));
      expect_block_end();
      return s;
    }
    if (k == "generation") {
      auto s = make_stmt(Stmt::Kind::kGeneration, kw);
      expect_block_end();
      s->bodies.push_back(parse_body({"endgeneration"}, &end));
      expect_block_end();
      return s;
    }
    if (k == "break" || k == "continue") {
      auto s = make_stmt(k == "break" ? Stmt::Kind::kBreak : Stmt::Kind::kContinue, kw);
      expect_block_end();
      return s;
    }
    fail_at(kw, "unknown or unexpected tag '" + k + "'");
  }

  // `a`, `a, b` or `(a, b)` as assignment / loop targets.
  std::vector<std::string> parse_targets() {
    std::vector<std::string> names;
    bool paren = skip_op("(");
    do {
      names.push_back(expect_name());
    } while (skip_op(","));
    if (paren) expect_op(")");
    return names;
  }

  ExprPtr make(Expr::Kind k, const Token& t) {
    auto e = std::make_shared<Expr>();
    e->kind = k;
    e->line = t.line, e->column = t.column;
    return e;
  }

  // Expressions separated by commas form a tuple (as `{{ a, b }}` or `set x = 1, 2`).
  ExprPtr parse_tuple(bool with_condexpr) {
    const Token& t = cur();
    ExprPtr first = parse_expression(with_condexpr);
    if (!is_op(",")) return first;
    auto tup = make(Expr::Kind::kTuple, t);
    tup->args.push_back(first);
    while (skip_op(",")) {
      if (cur().kind == TokenKind::kBlockEnd || cur().kind == TokenKind::kVarEnd || is_name("in"))
        break;
      tup->args.push_back(parse_expression(with_condexpr));
    }
    return tup;
  }

  ExprPtr parse_expression(bool with_condexpr) {
    return with_condexpr ? parse_condexpr() : parse_or();
  }

  ExprPtr parse_condexpr() {
    ExprPtr e = parse_or();
    while (is_name("if")) {
      auto c = make(Expr::Kind::kCondition, cur());
      ++i_;
      ExprPtr cond = parse_or();
      ExprPtr other = skip_name("else") ? parse_condexpr() : nullptr;
      c->args = {cond, e, other};
      e = c;
    }
    return e;
  }

  ExprPtr binary(const std::string& op, ExprPtr a, ExprPtr b, const Token& t) {
    auto e = make(Expr::Kind::kBinary, t);
    e->name = op;
    e->args = {std::move(a), std::move(b)};
    return e;
  }

  ExprPtr parse_or() {
    ExprPtr e = parse_and();
    while (is_name("or")) {
      const Token& t = t_[i_++];
      e = binary("or", e, parse_and(), t);
    }
    return e;
  }

  ExprPtr parse_and() {
    ExprPtr e = parse_not();
    while (is_name("and")) {
      const Token& t = t_[i_++];
      e = binary("and", e, parse_not(), t);
    }
    return e;
  }

  ExprPtr parse_not() {
    if (is_name("not")) {
      auto e = make(Expr::Kind::kUnary, cur());
      ++i_;
      e->name = "not";
      e->args.push_back(parse_not());
      return e;
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    const Token& t = cur();
    ExprPtr first = parse_math1();
    ExprPtr cmp;
    while (true) {
      std::string op;
      if (cur().kind == TokenKind::kOp &&
          (cur().text == "==" || cur().text == "!=" || cur().text == "<" || cur().text == "<=" ||
           cur().text == ">" || cur().text == ">=")) {
        op = cur().text;
        ++i_;
      } else if (is_name("in")) {
        op = "in";
        ++i_;
      } else if (is_name("not") && peek().kind == TokenKind::kName && peek().text == "in") {
        op = "not in";
        i_ += 2;
      } else {
        break;
      }
      if (!cmp) {
        cmp = make(Expr::Kind::kCompare, t);
        cmp->args.push_back(first);
      }
      cmp->ops.push_back(op);
      cmp->args.push_back(parse_math1());
    }
    return cmp ? cmp : first;
  }

  ExprPtr parse_math1() {
    ExprPtr e = parse_concat();
    while (is_op("+") || is_op("-")) {
      const Token& t = t_[i_++];
      e = binary(t.text, e, parse_concat(), t);
    }
    return e;
  }

  ExprPtr parse_concat() {
    ExprPtr e = parse_math2();
    while (is_op("~")) {
      const Token& t = t_[i_++];
      e = binary("~", e, parse_math2(), t);
    }
    return e;
  }

  ExprPtr parse_math2() {
    ExprPtr e = parse_pow();
    while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
      const Token& t = t_[i_++];
      e = binary(t.text, e, parse_pow(), t);
    }
    return e;
  }

  ExprPtr parse_pow() {
    ExprPtr e = parse_unary(true);
    while (is_op("**")) {
      const Token& t = t_[i_++];
      e = binary("**", e, parse_unary(true), t);
    }
    return e;
  }

  ExprPtr parse_unary(bool with_filter) {
    ExprPtr e;
    if (is_op("-") || is_op("+")) {
      e = make(Expr::Kind::kUnary, cur());
      e->name = t_[i_++].text;
      e->args.push_back(parse_unary(false));
    } else {
      e = parse_primary();
    }
    e = parse_postfix(e);
    if (with_filter) e = parse_filter_expr(e);
    return e;
  }

  ExprPtr parse_primary() {
    const Token& t = cur();
    switch (t.kind) {
      case TokenKind::kName: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t);
        if (t.text == "true" || t.text == "True")
          e->value = Value(true);
        else if (t.text == "false" || t.text == "False")
          e->value = Value(false);
        else if (t.text == "none" || t.text == "None")
          e->value = Value::none();
        else
          e->kind = Expr::Kind::kName, e->name = t.text;
        return e;
      }
      case TokenKind::kString: {
        std::string s;
        while (cur().kind == TokenKind::kString) s += t_[i_++].text;  // adjacent literals join
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = Value(s);
        return e;
      }
      case TokenKind::kInt: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = Value(static_cast<int64_t>(std::stoll(t.text)));
        return e;
      }
      case TokenKind::kFloat: {
        ++i_;
        auto e = make(Expr::Kind::kLiteral, t);
        e->value = Value(std::stod(t.text));
        return e;
      }
      default:
        break;
    }
    if (skip_op("(")) {
      if (skip_op(")")) return make(Expr::Kind::kTuple, t);
      ExprPtr e = parse_expression(true);
      if (is_op(",")) {
        auto tup = make(Expr::Kind::kTuple, t);
        tup->args.push_back(e);
        while (skip_op(",")) {
          if (is_op(")")) break;
          tup->args.push_back(parse_expression(true));
        }
        e = tup;
      }
      expect_op(")");
      return e;
    }
    if (skip_op("[")) {
      auto e = make(Expr::Kind::kList, t);
      while (!skip_op("]")) {
        if (!e->args.empty()) expect_op(",");
        if (skip_op("]")) break;
        e->args.push_back(parse_expression(true));
      }
      return e;
    }
    if (skip_op("{")) {
      auto e = make(Expr::Kind::kDict, t);
      while (!skip_op("}")) {
        if (!e->args.empty()) expect_op(",");
        if (skip_op("}")) break;
        e->args.push_back(parse_expression(true));
        expect_op(":");
        e->args.push_back(parse_expression(true));
      }
      return e;
    }
    fail_at(t, "unexpected " + describe(t));
  }

  ExprPtr parse_postfix(ExprPtr e) {
    while (true) {
      if (is_op(".") || is_op("[")) {
        e = parse_subscript(e);
      } else if (is_op("(")) {
        e = parse_call(e);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr e) {
    while (true) {
      if (is_op("|")) {
        e = parse_filter(e);
      } else if (is_name("is")) {
        e = parse_test(e);
      } else if (is_op("(")) {
        e = parse_call(e);
      } else {
        return e;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr obj) {
    const Token& t = t_[i_++];
    if (t.text == ".") {
      const Token& n = cur();
      if (n.kind == TokenKind::kName) {
        ++i_;
        auto e = make(Expr::Kind::kAttr, n);
        e->name = n.text;
        e->args.push_back(obj);
        return e;
      }
      if (n.kind == TokenKind::kInt) {
        ++i_;
        auto idx = make(Expr::Kind::kLiteral, n);
        idx->value = Value(static_cast<int64_t>(std::stoll(n.text)));
        auto e = make(Expr::Kind::kItem, n);
        e->args = {obj, idx};
        return e;
      }
      fail_at(n, "expected an attribute name after '.'");
    }
    // '[': an index or a slice start:stop:step
    ExprPtr parts[3] = {nullptr, nullptr, nullptr};
    bool is_slice = false;
    if (!is_op(":")) parts[0] = parse_expression(true);
    if (skip_op(":")) {
      is_slice = true;
      if (!is_op("]") && !is_op(":")) parts[1] = parse_expression(true);
      if (skip_op(":") && !is_op("]")) parts[2] = parse_expression(true);
    }
    expect_op("]");
    auto e = make(is_slice ? Expr::Kind::kSlice : Expr::Kind::kItem, t);
    e->args.push_back(obj);
    if (is_slice)
      e->args.insert(e->args.end(), {parts[0], parts[1], parts[2]});
    else
      e->args.push_back(parts[0]);
    return e;
  }

  // Call arguments after '(' into e->args (appended) and e->kwargs.
  void parse_args(const ExprPtr& e) {
    expect_op("(");
    bool first = true;
    while (!skip_op(")")) {
      if (!first) expect_op(",");
      first = false;
      if (skip_op(")")) break;
      if (cur().kind == TokenKind::kName && peek().kind == TokenKind::kOp && peek().text == "=") {
        std::string key = t_[i_].text;
        i_ += 2;
        e->kwargs.emplace_back(key, parse_expression(true));
      } else {
        if (!e->kwargs.empty()) fail_at(cur(), "positional argument after keyword argument");
        e->args.push_back(parse_expression(true));
      }
    }
  }

  ExprPtr parse_call(ExprPtr fn) {
    auto e = make(Expr::Kind::kCall, cur());
    e->args.push_back(fn);
    parse_args(e);
    return e;
  }

  // `| name` or `| name(args)`; obj may be null (a {% filter %} block).
  ExprPtr parse_filter(ExprPtr obj) {
    if (obj) expect_op("|");
    auto e = make(Expr::Kind::kFilter, cur());
    e->name = expect_name();
    e->args.push_back(obj);
    if (is_op("(")) parse_args(e);
    return e;
  }

  ExprPtr parse_test(ExprPtr obj) {
    ++i_;  // 'is'
    auto e = make(Expr::Kind::kTest, cur());
    e->negated = skip_name("not");
    e->name = expect_name();
    e->args.push_back(obj);
    const Token& n = cur();
    if (is_op("(")) {
      parse_args(e);
    } else if ((n.kind == TokenKind::kName || n.kind == TokenKind::kString ||
                n.kind == TokenKind::kInt || n.kind == TokenKind::kFloat || is_op("[") ||
                is_op("{")) &&
               !(n.kind == TokenKind::kName &&
                 (n.text == "else" || n.text == "or" || n.text == "and" || n.text == "if"))) {
      e->args.push_back(parse_postfix(parse_primary()));
    }
    return e;
  }

  std::vector<Token> t_;
  std::string name_;
  size_t i_ = 0;
};

}  // namespace

Body parse_template(const std::string& source, const std::string& name, const LexOptions& options) {
  return Parser(lex_template(source, name, options), name).parse_all();
}

}  // namespace reef::jinja
