// The tree-walking interpreter behind jinja::Template: statements write into an output string,
// expressions evaluate to Values with Python's operator semantics.
#include "reef/tokenizer/jinja_template.h"

#include <cmath>
#include <ctime>
#include <map>
#include <memory>

#include "reef/base/error.h"
#include "reef/tokenizer/jinja_builtins.h"
#include "reef/tokenizer/jinja_operators.h"

namespace reef::jinja {
namespace {

using Scope = std::map<std::string, Value>;

class Interpreter {
 public:
  Interpreter(const std::string& name, const TemplateOptions& options, RenderResult* result)
      : name_(name), options_(options), result_(result) {}

  void run(const Body& body, const Dict& variables) {
    enter(variables);
    exec(body, result_->text, true);
  }

  // The value of the output statement `s`, errors located as exec() locates them.
  Value value_of(const Stmt& s, const Dict& variables) {
    enter(variables);
    try {
      return defined(eval(*s.expr));
    } catch (const EvalError& e) {
      located(s.line, s.column, e.what());
    }
  }

 private:
  enum class Flow { kNormal, kBreak, kContinue };

  void enter(const Dict& variables) {
    auto globals = std::make_shared<Scope>();
    install_globals(*globals);
    auto top = std::make_shared<Scope>();
    for (const auto& [k, v] : variables.items()) (*top)[k] = v;
    scopes_ = {globals, top};
  }

  // StrictUndefined: using an undefined value is an error naming it (or the lookup that failed).
  const Value& defined(const Value& v) const {
    if (!options_.strict_undefined || !v.is_undefined()) return v;
    const std::string& what = v.str();
    if (what.empty()) throw EvalError("value is undefined");
    if (what.find_first_of(" '") != std::string::npos) throw EvalError(what);  // a lookup's hint
    throw EvalError("'" + what + "' " + options_.undefined_name_message);
  }

  void install_globals(Scope& g) {
    g["raise_exception"] =
        Value::function("raise_exception", [](const List& a, const Kwargs&) -> Value {
          throw TemplateRaised(a.empty() ? "" : a[0].to_str());
        });
    g["strftime_now"] = Value::function("strftime_now", [](const List& a, const Kwargs&) {
      std::time_t t = std::time(nullptr);
      std::tm tm{};
      localtime_r(&t, &tm);
      char buf[256];
      size_t n = std::strftime(buf, sizeof buf, a.empty() ? "" : a[0].to_str().c_str(), &tm);
      return Value(std::string(buf, n));
    });
    auto make_dict = [](bool ns) {
      return [ns](const List& a, const Kwargs& kw) {
        Dict d;
        if (!a.empty() && a[0].is_dict())
          for (const auto& [k, v] : a[0].dict().items()) d.set(k, v);
        for (const auto& [k, v] : kw) d.set(k, v);
        return Value::from_dict(std::move(d), ns);
      };
    };
    g["namespace"] = Value::function("namespace", make_dict(true));
    g["dict"] = Value::function("dict", make_dict(false));
    g["range"] = Value::function("range", [](const List& a, const Kwargs&) {
      int64_t start = 0, stop = 0, step = 1;
      if (a.size() == 1)
        stop = a[0].as_int();
      else if (a.size() >= 2)
        start = a[0].as_int(), stop = a[1].as_int();
      if (a.size() >= 3) step = a[2].as_int();
      if (step == 0) throw EvalError("range() arg 3 must not be zero");
      List out;
      for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) out.push_back(Value(i));
      return Value::list(out);
    });
  }

  [[noreturn]] void located(int line, int col, const std::string& what) const {
    usage_error("{}:{}:{}: {}", name_, line, col, what);
  }

  Value lookup(const std::string& name) const {
    for (auto it = scopes_.rbegin(); it != scopes_.rend(); ++it) {
      auto f = (*it)->find(name);
      if (f != (*it)->end()) return f->second;
    }
    return Value::undefined(name);
  }

  // `top`: `out` is the rendered text itself, so generation spans are offsets into it.
  Flow exec(const Body& body, std::string& out, bool top) {
    for (const StmtPtr& s : body) {
      Flow f;
      try {
        f = exec_one(*s, out, top);
      } catch (const EvalError& e) {
        located(s->line, s->column, e.what());
      }
      if (f != Flow::kNormal) return f;
    }
    return Flow::kNormal;
  }

  Flow exec_one(const Stmt& s, std::string& out, bool top) {
    switch (s.kind) {
      case Stmt::Kind::kText:
        out += s.text;
        return Flow::kNormal;
      case Stmt::Kind::kOutput:
        out += defined(eval(*s.expr)).to_str();
        return Flow::kNormal;
      case Stmt::Kind::kIf:
        for (size_t i = 0; i < s.conditions.size(); ++i)
          if (defined(eval(*s.conditions[i])).truthy()) return exec(s.bodies[i], out, top);
        if (s.bodies.size() > s.conditions.size()) return exec(s.bodies.back(), out, top);
        return Flow::kNormal;
      case Stmt::Kind::kFor:
        exec_for(s, out, top);
        return Flow::kNormal;
      case Stmt::Kind::kSet: {
        Value v = eval(*s.expr);
        if (!s.attr.empty()) {
          Value ns = lookup(s.names[0]);
          if (!ns.is_namespace())
            throw EvalError("cannot assign attribute on non-namespace object '" + s.names[0] + "'");
          ns.mutable_dict().set(s.attr, v);
        } else {
          assign(s.names, v);
        }
        return Flow::kNormal;
      }
      case Stmt::Kind::kSetBlock: {
        std::string captured;
        exec(s.bodies[0], captured, false);
        (*scopes_.back())[s.names[0]] = Value(captured);
        return Flow::kNormal;
      }
      case Stmt::Kind::kMacro:
        define_macro(s);
        return Flow::kNormal;
      case Stmt::Kind::kFilterBlock: {
        std::string captured;
        exec(s.bodies[0], captured, false);
        out += filter(*s.expr, Value(captured)).to_str();
        return Flow::kNormal;
      }
      case Stmt::Kind::kGeneration: {
        size_t begin = out.size();
        Flow f = exec(s.bodies[0], out, top);
        if (top) result_->generation_spans.emplace_back(begin, out.size());
        return f;
      }
      case Stmt::Kind::kBreak:
        return Flow::kBreak;
      case Stmt::Kind::kContinue:
        return Flow::kContinue;
    }
    return Flow::kNormal;
  }

  void assign(const std::vector<std::string>& names, const Value& v) {
    Scope& scope = *scopes_.back();
    if (names.size() == 1) {
      scope[names[0]] = v;
      return;
    }
    List items = iterate(v);
    if (items.size() != names.size())
      throw EvalError("cannot unpack " + std::to_string(items.size()) + " values into " +
                      std::to_string(names.size()) + " names");
    for (size_t i = 0; i < names.size(); ++i) scope[names[i]] = items[i];
  }

  void exec_for(const Stmt& s, std::string& out, bool top) {
    Value seq = defined(eval(*s.expr));
    if (seq.is_none()) throw EvalError("'NoneType' object is not iterable");
    List items = iterate(seq);
    scopes_.push_back(std::make_shared<Scope>());
    if (s.condition) {  // the loop filter runs before loop.length is known
      List kept;
      for (const Value& it : items) {
        assign(s.names, it);
        if (defined(eval(*s.condition)).truthy()) kept.push_back(it);
      }
      items.swap(kept);
    }
    const int64_t n = static_cast<int64_t>(items.size());
    for (int64_t i = 0; i < n; ++i) {
      Dict loop;
      loop.set("index0", Value(i));
      loop.set("index", Value(i + 1));
      loop.set("revindex0", Value(n - i - 1));
      loop.set("revindex", Value(n - i));
      loop.set("first", Value(i == 0));
      loop.set("last", Value(i == n - 1));
      loop.set("length", Value(n));
      loop.set("depth", Value(1));
      loop.set("depth0", Value(0));
      loop.set("previtem", i > 0 ? items[i - 1] : Value::undefined("there is no previous item"));
      loop.set("nextitem", i + 1 < n ? items[i + 1] : Value::undefined("there is no next item"));
      loop.set("cycle", Value::function("loop.cycle", [i](const List& a, const Kwargs&) {
                 if (a.empty()) throw EvalError("no items for cycling given");
                 return a[static_cast<size_t>(i) % a.size()];
               }));
      (*scopes_.back())["loop"] = Value::from_dict(std::move(loop));
      assign(s.names, items[i]);
      if (exec(s.bodies[0], out, top) == Flow::kBreak) break;
    }
    scopes_.pop_back();
    if (n == 0 && s.bodies.size() > 1) exec(s.bodies[1], out, top);
  }

  void define_macro(const Stmt& s) {
    const Stmt* def = &s;
    auto globals = std::vector<std::shared_ptr<Scope>>(scopes_.begin(), scopes_.begin() + 2);
    (*scopes_.back())[s.text] =
        Value::function(s.text, [this, def, globals](const List& a, const Kwargs& kw) {
          auto frame = std::make_shared<Scope>();
          if (a.size() > def->names.size())
            throw EvalError("macro '" + def->text + "' takes " + std::to_string(def->names.size()) +
                            " arguments, got " + std::to_string(a.size()));
          for (size_t i = 0; i < def->names.size(); ++i) {
            const std::string& p = def->names[i];
            Value v = i < a.size() ? a[i] : Value::undefined(p);
            for (const auto& [k, x] : kw)
              if (k == p) v = x;
            (*frame)[p] = v;
          }
          if (macro_depth_ >= kMaxMacroDepth)
            throw EvalError("maximum recursion depth exceeded in macro '" + def->text + "'");
          auto saved = scopes_;
          scopes_ = globals;
          scopes_.push_back(frame);
          // Defaults are evaluated in the macro's frame, so they may refer to earlier parameters.
          for (size_t i = 0; i < def->names.size(); ++i)
            if ((*frame)[def->names[i]].is_undefined() && def->conditions[i])
              (*frame)[def->names[i]] = eval(*def->conditions[i]);
          std::string captured;
          ++macro_depth_;
          try {
            exec(def->bodies[0], captured, false);
          } catch (...) {
            scopes_ = saved;
            --macro_depth_;
            throw;
          }
          scopes_ = saved;
          --macro_depth_;
          return Value(captured);
        });
  }

  void call_args(const Expr& e, size_t from, List* args, Kwargs* kwargs) {
    for (size_t i = from; i < e.args.size(); ++i) args->push_back(eval(*e.args[i]));
    for (const auto& [k, x] : e.kwargs) kwargs->emplace_back(k, eval(*x));
  }

  Value filter(const Expr& e, const Value& input) {
    List args;
    Kwargs kwargs;
    call_args(e, 1, &args, &kwargs);
    if (e.name != "default" && e.name != "d") defined(input);
    for (const auto& [name, f] : options_.filters)
      if (name == e.name) {
        args.insert(args.begin(), input);
        return f(args, kwargs);
      }
    return apply_filter(e.name, input, args, kwargs);
  }

  Value eval(const Expr& e) {
    switch (e.kind) {
      case Expr::Kind::kLiteral:
        return e.value;
      case Expr::Kind::kName:
        return lookup(e.name);
      case Expr::Kind::kList:
      case Expr::Kind::kTuple: {
        List items;
        for (const auto& x : e.args) items.push_back(eval(*x));
        return Value::list(std::move(items), e.kind == Expr::Kind::kTuple);
      }
      case Expr::Kind::kDict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
          Value k = eval(*e.args[i]);
          if (!k.is_string()) throw EvalError("dict literal keys must be strings here");
          d.set(k.str(), eval(*e.args[i + 1]));
        }
        return Value::from_dict(std::move(d));
      }
      case Expr::Kind::kAttr:
        return get_attribute(eval(*e.args[0]), e.name);
      case Expr::Kind::kItem:
        return get_item(eval(*e.args[0]), eval(*e.args[1]));
      case Expr::Kind::kSlice: {
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
        return get_slice(eval(*e.args[0]), part(1), part(2), part(3));
      }
      case Expr::Kind::kCall: {
        Value fn = eval(*e.args[0]);
        if (!fn.is_function()) {
          if (fn.is_undefined()) throw EvalError("'" + fn.str() + "' is undefined");
          throw EvalError("'" + fn.type_name() + "' object is not callable");
        }
        List args;
        Kwargs kwargs;
        call_args(e, 1, &args, &kwargs);
        return fn.func()(args, kwargs);
      }
      case Expr::Kind::kFilter:
        return filter(e, eval(*e.args[0]));
      case Expr::Kind::kTest: {
        Value v = eval(*e.args[0]);
        List args;
        Kwargs kwargs;
        call_args(e, 1, &args, &kwargs);
        return Value(apply_test(e.name, v, args) != e.negated);
      }
      case Expr::Kind::kUnary: {
        Value v = defined(eval(*e.args[0]));
        if (e.name == "not") return Value(!v.truthy());
        if (!v.is_number())
          throw EvalError("bad operand type for unary " + e.name + ": '" + v.type_name() + "'");
        if (e.name == "+") return v.is_bool() ? Value(v.as_int()) : v;
        return v.kind() == Value::Kind::kFloat ? Value(-v.as_float()) : Value(-v.as_int());
      }
      case Expr::Kind::kBinary: {
        if (e.name == "and") {
          Value a = defined(eval(*e.args[0]));
          return a.truthy() ? eval(*e.args[1]) : a;
        }
        if (e.name == "or") {
          Value a = defined(eval(*e.args[0]));
          return a.truthy() ? a : eval(*e.args[1]);
        }
        Value a = defined(eval(*e.args[0])), b = defined(eval(*e.args[1]));
        if (e.name == "~") return Value(a.to_str() + b.to_str());
        return arithmetic(e.name, a, b);
      }
      case Expr::Kind::kCompare: {
        Value left = defined(eval(*e.args[0]));
        for (size_t i = 0; i < e.ops.size(); ++i) {
          Value right = defined(eval(*e.args[i + 1]));
          const std::string& op = e.ops[i];
          bool ok = op == "=="   ? equal(left, right)
                    : op == "!=" ? !equal(left, right)
                    : op == "<"  ? less(left, right)
                    : op == "<=" ? !less(right, left)
                    : op == ">"  ? less(right, left)
                    : op == ">=" ? !less(left, right)
                    : op == "in" ? contains(right, left)
                                 : !contains(right, left);
          if (!ok) return Value(false);
          left = right;
        }
        return Value(true);
      }
      case Expr::Kind::kCondition:
        if (defined(eval(*e.args[0])).truthy()) return eval(*e.args[1]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined();
    }
    return Value();
  }

  static constexpr int kMaxMacroDepth = 200;  // a template recursing forever fails, not the stack

  const std::string& name_;
  const TemplateOptions& options_;
  RenderResult* result_;
  std::vector<std::shared_ptr<Scope>> scopes_;
  int macro_depth_ = 0;
};

bool uses_generation(const Body& body) {
  for (const StmtPtr& s : body) {
    if (s->kind == Stmt::Kind::kGeneration) return true;
    for (const Body& b : s->bodies)
      if (uses_generation(b)) return true;
  }
  return false;
}

}  // namespace

Template::Template(const std::string& source, std::string name, TemplateOptions options)
    : name_(std::move(name)),
      options_(std::move(options)),
      body_(parse_template(source, name_, options_.lex)),
      has_generation_(uses_generation(body_)) {}

RenderResult Template::render(const Dict& variables) const {
  RenderResult result;
  try {
    Interpreter(name_, options_, &result).run(body_, variables);
  } catch (const TemplateRaised& e) {
    usage_error("{}: raise_exception: {}", name_, e.what());
  } catch (const EvalError& e) {
    usage_error("{}: {}", name_, e.what());
  }
  return result;
}

bool Template::is_single_expression() const {
  int outputs = 0;
  for (const StmtPtr& s : body_) {
    if (s->kind == Stmt::Kind::kOutput)
      ++outputs;
    else if (s->kind != Stmt::Kind::kText ||
             s->text.find_first_not_of(" \t\n\r\f\v") != std::string::npos)
      return false;
  }
  return outputs == 1;
}

Value Template::evaluate(const Dict& variables) const {
  if (!is_single_expression()) usage_error("{}: not a single {{{{ expression }}}}", name_);
  for (const StmtPtr& s : body_)
    if (s->kind == Stmt::Kind::kOutput) {
      RenderResult unused;
      try {
        return Interpreter(name_, options_, &unused).value_of(*s, variables);
      } catch (const TemplateRaised& e) {
        usage_error("{}: raise_exception: {}", name_, e.what());
      } catch (const EvalError& e) {
        usage_error("{}: {}", name_, e.what());
      }
    }
  return Value();
}

}  // namespace reef::jinja
