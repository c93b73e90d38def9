// The Jinja interpreter piece by piece, with the results jinja2 (trim_blocks, lstrip_blocks, as
// transformers configures it) and CPython give for the same input: whitespace control, syntax
// errors with line and column, Python printing and json.dumps, operators, loops and scoping,
// macros, filters, tests, string methods, raise_exception and {% generation %} spans; and the
// settings lm-eval's task environment uses (no block trimming, trailing newline kept,
// StrictUndefined) with the value of a single-expression template.
// (tests/reference/chat_template_test.cpp compares whole templates against transformers.)
#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/tokenizer/jinja_template.h"

namespace reef::jinja {
namespace {

std::string render(const std::string& src, const Dict& vars = {}) {
  return Template(src, "t").render(vars).text;
}

Value json(const char* text) { return Value::from_json(nlohmann::ordered_json::parse(text)); }

std::string error_of(const std::string& src, const Dict& vars = {}) {
  try {
    Template(src, "t.jinja").render(vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JinjaWhitespace, TrimAndLstripBlocksAsTransformersSetsThem) {
  // trim_blocks drops the newline after %}, lstrip_blocks the indentation before {%.
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc"), "a\n  b\nc");
  // {{ }} is not a block: no lstrip, no trim.
  EXPECT_EQ(render("  {{ 'x' }}\ny"), "  x\ny");
  // Comments are block-like for both rules.
  EXPECT_EQ(render("a\n    {# note #}\nb"), "a\nb");
  // '-' strips all whitespace, newlines included, on its side.
  EXPECT_EQ(render("a  \n\n {{- 'x' -}} \n\n b"), "axb");
  // '+' keeps the indentation (lstrip off) and, after %}, the newline (trim off).
  EXPECT_EQ(render("a\n  {%+ if true +%}\nb{% endif %}"), "a\n  \nb");
  // lstrip only when nothing but spaces/tabs precede the tag on its line.
  EXPECT_EQ(render("x  {% if true %}y{% endif %}"), "x  y");
  // One trailing newline of the template is dropped; \r\n becomes \n.
  EXPECT_EQ(render("a\r\nb\n"), "a\nb");
  EXPECT_EQ(render("a\n\n"), "a\n");
}

TEST(JinjaSyntax, ErrorsNameLineAndColumn) {
  EXPECT_EQ(error_of("hello\n{% if x %}\nno end"),
            "t.jinja:3:7: template syntax error: unexpected end of template, expected 'elif'");
  EXPECT_EQ(error_of("{{ 'a' + }}"), "t.jinja:1:10: template syntax error: unexpected '}}'");
  EXPECT_EQ(error_of("ok\n  {% frobnicate %}"),
            "t.jinja:2:6: template syntax error: unknown or unexpected tag 'frobnicate'");
  EXPECT_EQ(error_of("{{ 'open"),
            "t.jinja:1:4: template syntax error: unterminated string literal");
  EXPECT_EQ(error_of("{# never closed"),
            "t.jinja:1:1: template syntax error: unterminated comment: missing '#}'");
  EXPECT_EQ(error_of("{% for x in y %}{% endif %}"),
            "t.jinja:1:20: template syntax error: unknown or unexpected tag 'endif'");
}

TEST(JinjaEval, RaiseExceptionAndEvaluationErrorsAreClear) {
  EXPECT_EQ(error_of("{{ raise_exception('Roles must alternate') }}"),
            "t.jinja: raise_exception: Roles must alternate");
  EXPECT_EQ(error_of("line1\n{{ missing.attr }}"), "t.jinja:2:1: 'missing' is undefined");
  EXPECT_EQ(error_of("{{ 'a' + 1 }}"),
            "t.jinja:1:1: unsupported operand type(s) for +: 'str' and 'int'");
  EXPECT_EQ(error_of("{{ x | nosuchfilter }}"), "t.jinja:1:1: no filter named 'nosuchfilter'");
  EXPECT_NE(error_of("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}")
                .find("maximum recursion depth"),
            std::string::npos);
  EXPECT_EQ(render("{% macro fact(n) %}{{ 1 if n <= 1 else n * fact(n - 1) | int }}{% endmacro "
                   "%}{{ fact(5) }}"),
            "120");
}

TEST(JinjaValues, PrintLikePython) {
  EXPECT_EQ(float_repr(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(float_repr(1e-5), "1e-05");
  EXPECT_EQ(float_repr(1e16), "1e+16");
  EXPECT_EQ(float_repr(1234567890123456.0), "1234567890123456.0");
  EXPECT_EQ(float_repr(0.0001), "0.0001");
  EXPECT_EQ(float_repr(-2.5), "-2.5");
  EXPECT_EQ(float_repr(3.0), "3.0");
  EXPECT_EQ(render("{{ [1, 'a', \"it's\", none, true, 2.0] }}"),
            "[1, 'a', \"it's\", None, True, 2.0]");
  EXPECT_EQ(render("{{ {'k': (1,)} }} {{ nothing }}|{{ none }}"), "{'k': (1,)} |None");
  EXPECT_EQ(string_repr("a\nb\\'"), "\"a\\nb\\\\'\"");
}

TEST(JinjaValues, TojsonIsJsonDumpsWithoutAsciiEscaping) {
  Dict vars;
  vars.set("x", json(R"({"b": [1, 2.5, null, true], "a": "é\"\n\u0001"})"));
  EXPECT_EQ(render("{{ x | tojson }}", vars), R"({"b": [1, 2.5, null, true], "a": "é\"\n\u0001"})");
  EXPECT_EQ(render("{{ x | tojson(indent=2, sort_keys=true) }}", vars),
            "{\n  \"a\": \"é\\\"\\n\\u0001\",\n  \"b\": [\n    1,\n    2.5,\n    null,\n    true\n "
            " ]\n}");
  EXPECT_EQ(render("{{ 'é😀' | tojson(ensure_ascii=true) }}"), R"("\u00e9\ud83d\ude00")");
  EXPECT_EQ(render("{{ {} | tojson }}{{ [] | tojson(indent=4) }}"), "{}[]");
}

TEST(JinjaEval, OperatorsFollowPython) {
  EXPECT_EQ(
      render("{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % -3 }} {{ 1 / 4 }} {{ 2 ** 8 }} {{ 'ab' * 2 }}"),
      "3 -4 -2 0.25 256 abab");
  EXPECT_EQ(render("{{ 1 == 1.0 }} {{ 1 < 2 < 2 }} {{ 'b' in 'abc' }} {{ 3 not in [1] }}"),
            "True False True True");
  EXPECT_EQ(render("{{ 0 or 'x' }} {{ 'y' and 0 }} {{ 'a' ~ 1 ~ none }}"), "x 0 a1None");
  EXPECT_EQ(render("{{ -3 | abs }} {{ 'n' if false }}|{{ 'a' if false else 'b' }}"), "3 |b");
}

TEST(JinjaEval, LoopsScopesAndNamespaces) {
  EXPECT_EQ(render("{% for x in 'abc' %}{{ loop.index0 }}{{ loop.first }}{{ loop.last }}{{ "
                   "loop.length }};{% endfor %}"),
            "0TrueFalse3;1FalseFalse3;2FalseTrue3;");
  EXPECT_EQ(render("{% for x in [] %}a{% else %}empty{% endfor %}"), "empty");
  EXPECT_EQ(render("{% for x in [1,2,3,4,5] if x is odd %}{{ x }}/{{ loop.length }} {% endfor %}"),
            "1/3 3/3 5/3 ");
  EXPECT_EQ(
      render("{% for x in [1,2,3] %}{% if x == 2 %}{% continue %}{% endif %}{{ x }}{% endfor %}"),
      "13");
  EXPECT_EQ(
      render("{% for x in [1,2,3] %}{% if x == 2 %}{% break %}{% endif %}{{ x }}{% endfor %}"),
      "1");
  // set inside a loop does not leak; a namespace does; set inside if does.
  EXPECT_EQ(render("{% set a = 1 %}{% for x in [5] %}{% set a = x %}{% endfor %}{{ a }}"), "1");
  EXPECT_EQ(render("{% set ns = namespace(a=1) %}{% for x in [5] %}{% set ns.a = x %}{% endfor "
                   "%}{{ ns.a }}"),
            "5");
  EXPECT_EQ(render("{% if true %}{% set b = 2 %}{% endif %}{{ b }}"), "2");
  EXPECT_EQ(render("{% for k, v in {'a': 1, 'b': 2} | items %}{{ k }}{{ v }}{% endfor %}"), "a1b2");
  EXPECT_EQ(render("{% for m in messages[::-1] %}{{ m }}{% endfor %}",
                   [] {
                     Dict d;
                     d.set("messages", json("[1, 2, 3]"));
                     return d;
                   }()),
            "321");
}

TEST(JinjaEval, MacrosFiltersAndTests) {
  EXPECT_EQ(
      render("{% macro m(a, b='d') %}[{{ a }}{{ b }}]{% endmacro %}{{ m(1) }}{{ m(2, b='x') }}"),
      "[1d][2x]");
  EXPECT_EQ(render("{{ '  hi  ' | trim }}|{{ 'Hello' | length }}|{{ 'é' | length }}|{{ [3,1] | "
                   "sort | join(',') }}"),
            "hi|5|1|1,3");
  Dict vars;
  vars.set("ms", json(R"([{"role": "system"}, {"role": "user", "x": 1}, {"role": "user"}])"));
  EXPECT_EQ(render("{{ ms | selectattr('role', 'equalto', 'user') | list | length }}"
                   "{{ ms | rejectattr('x', 'defined') | map(attribute='role') | join('+') }}"
                   "{{ ms[1].get('x') }}{{ ms[0].get('x') }}{{ ms[0].get('x', 7) }}",
                   vars),
            "2system+user1None7");
  EXPECT_EQ(render("{{ x is defined }}{{ none is none }}{{ 'a' is string }}{{ {} is mapping }}{{ 4 "
                   "is divisibleby 2 }}{{ 2 is equalto 2 }}"),
            "FalseTrueTrueTrueTrueTrue");
  EXPECT_EQ(
      render("{{ nothing | default('d') }}{{ '' | default('e', true) }}{{ none | default('n') }}"),
      "deNone");
}

TEST(JinjaEval, StringMethodsAndSlices) {
  EXPECT_EQ(render("{{ "
                   "'<think>\\nA\\n</think>\\n\\nB'.split('</"
                   "think>')[0].rstrip('\\n').split('<think>')[-1].lstrip('\\n') }}"),
            "A");
  EXPECT_EQ(render("{{ ' a  b '.split() }} {{ 'a,b,c'.split(',', 1) }} {{ 'xhix'.strip('x') }}"),
            "['a', 'b'] ['a', 'b,c'] hi");
  EXPECT_EQ(render("{{ 'abc'.startswith('ab') }}{{ 'abc'.endswith(('x', 'bc')) }}{{ "
                   "'aXa'.replace('a', 'b') }}"),
            "TrueTruebXb");
  EXPECT_EQ(render("{{ 'héllo'[1:3] }}|{{ 'abc'[::-1] }}|{{ [1,2,3][-1] }}|{{ 'abc'[5] }}|{{ "
                   "'{\"a\": 1}'[:-1] }}"),
            "él|cba|3||{\"a\": 1");
}

TEST(JinjaGeneration, SpansAreTheBytesTheBlocksRendered) {
  Template t(
      "{% for m in ['é', 'b'] %}<{{ m }}>{% generation %}{{ m }}!{% endgeneration %}{% endfor %}",
      "t");
  EXPECT_TRUE(t.has_generation_blocks());
  RenderResult r = t.render({});
  EXPECT_EQ(r.text, "<é>é!<b>b!");
  ASSERT_EQ(r.generation_spans.size(), 2u);
  EXPECT_EQ(r.text.substr(r.generation_spans[0].first,
                          r.generation_spans[0].second - r.generation_spans[0].first),
            "é!");
  EXPECT_EQ(r.text.substr(r.generation_spans[1].first,
                          r.generation_spans[1].second - r.generation_spans[1].first),
            "b!");
  EXPECT_FALSE(Template("{{ 'x' }}", "t").has_generation_blocks());
}

TemplateOptions lm_eval_options() {
  TemplateOptions o;
  o.lex = {/*trim_blocks=*/false, /*lstrip_blocks=*/false, /*keep_trailing_newline=*/true};
  o.strict_undefined = true;
  return o;
}

std::string strict_error(const std::string& src, const Dict& vars = {}) {
  try {
    Template(src, "s", lm_eval_options()).render(vars);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(JinjaOptions, LmEvalWhitespaceSettings) {
  Template t("a\n  {% if true %}\n  b\n  {% endif %}\nc\n", "t", lm_eval_options());
  EXPECT_EQ(t.render({}).text, "a\n  \n  b\n  \nc\n");
  EXPECT_EQ(render("a\n  {% if true %}\n  b\n  {% endif %}\nc\n"), "a\n  b\nc");
}

TEST(JinjaOptions, StrictUndefinedRefusesUsesButNotTests) {
  Dict vars;
  vars.set("d", json(R"({"k": [1]})"));
  EXPECT_EQ(strict_error("{{ nope }}"), "s:1:1: 'nope' is undefined");
  EXPECT_EQ(strict_error("{% if nope %}x{% endif %}"), "s:1:4: 'nope' is undefined");
  EXPECT_EQ(strict_error("{{ d.x }}", vars), "s:1:1: 'dict object' has no attribute 'x'");
  EXPECT_EQ(strict_error("{{ d.k[3] }}", vars), "s:1:1: list index out of range");
  EXPECT_EQ(strict_error("{{ nope | trim }}"), "s:1:1: 'nope' is undefined");
  EXPECT_EQ(strict_error("{{ 'a' ~ nope }}"), "s:1:1: 'nope' is undefined");
  EXPECT_EQ(strict_error("{% for x in nope %}{% endfor %}"), "s:1:4: 'nope' is undefined");
  Template ok("{{ nope is defined }}|{{ nope | default('z') }}|{{ d.k[0] }}", "s",
              lm_eval_options());
  EXPECT_EQ(ok.render(vars).text, "False|z|1");
  EXPECT_EQ(render("{{ nope }}|{{ d.x }}", vars), "|");  // transformers' default Undefined
  TemplateOptions named = lm_eval_options();
  named.undefined_name_message = "is not a field of the document";
  try {
    Template("{{ nope }}", "s", named).render({});
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "s:1:1: 'nope' is not a field of the document");
  }
}

TEST(JinjaOptions, ExtraFiltersTakeTheValueFirst) {
  TemplateOptions o;
  o.filters.emplace_back("twice", [](const List& a, const Kwargs& kw) {
    std::string sep = a.size() > 1 ? a[1].str() : kw.empty() ? "" : kw[0].second.str();
    return Value(a[0].to_str() + sep + a[0].to_str());
  });
  EXPECT_EQ(
      Template("{{ 'ab' | twice }} {{ 1 | twice('-') }} {{ 'x' | twice(sep='+') | upper }}", "t", o)
          .render({})
          .text,
      "abab 1-1 X+X");
  EXPECT_EQ(Template("{% filter twice %}q{% endfilter %}", "t", o).render({}).text, "qq");
}

TEST(JinjaOptions, SingleExpressionEvaluatesToItsValue) {
  Dict vars;
  vars.set("d", json(R"({"k": [1, "a"], "n": 2})"));
  Template list(" {{ d.k }}\n", "t");
  ASSERT_TRUE(list.is_single_expression());
  Value v = list.evaluate(vars);
  ASSERT_TRUE(v.is_list());
  EXPECT_EQ(v.repr(), "[1, 'a']");
  EXPECT_EQ(Template("{{ d.n + 1 }}", "t").evaluate(vars).as_int(), 3);
  EXPECT_FALSE(Template("n={{ d.n }}", "t").is_single_expression());
  EXPECT_FALSE(Template("{{ 1 }}{{ 2 }}", "t").is_single_expression());
  EXPECT_FALSE(Template("{% if true %}{{ 1 }}{% endif %}", "t").is_single_expression());
  EXPECT_THROW(Template("x{{ 1 }}", "t").evaluate(vars), Error);
  EXPECT_THROW(Template("{{ nope }}", "t", lm_eval_options()).evaluate(vars), Error);
}

}  // namespace
}  // namespace reef::jinja
