// Task templates against Jinja as lm-evaluation-harness applies it (lm_eval.utils.apply_template);
// expected strings were printed by it for the same document.
#include "reef/eval/task_template.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"

namespace reef::eval {
namespace {

const nlohmann::json kDoc = nlohmann::json::parse(R"({"question": "  Who? ",
  "choices": {"text": ["x", "y's", "z"], "label": ["A", "B", "C"]}, "answerKey": "B", "n": 3,
  "flag": true, "lst": ["a", "b"]})");

std::string render(const std::string& t) { return render_template(t, kDoc, "test"); }

TEST(Template, RendersAsJinjaDoes) {
  EXPECT_EQ(render("Q: {{question.strip()}}\nA:"), "Q: Who?\nA:");
  EXPECT_EQ(render("{{choices.label.index(answerKey)}}"), "1");
  EXPECT_EQ(render("{{choices.text}}"), "['x', \"y's\", 'z']");
  EXPECT_EQ(render("{{choices.text[1]}}-{{n}}-{{flag}}"), "y's-3-True");
  EXPECT_EQ(render("{{question|trim|lower}}!"), "who?!");
  EXPECT_EQ(render("{{- question -}}|"), "  Who? |");
  EXPECT_EQ(render("{{lst[-1] ~ n}}"), "b3");
  EXPECT_EQ(render("{{ 'x' + lst[0] }}"), "xa");
  EXPECT_EQ(render("{{question.split()}}"), "['Who?']");
  EXPECT_EQ(render("{{ lst|length }}"), "2");
  EXPECT_EQ(render("no braces {x}"), "no braces {x}");
}

TEST(Template, SingleExpressionKeepsItsValue) {
  EXPECT_EQ(template_value("{{choices.text}}", kDoc, "t"), kDoc["choices"]["text"]);
  EXPECT_EQ(template_value(" {{ n }} ", kDoc, "t"), 3);
  EXPECT_EQ(template_value("n={{ n }}", kDoc, "t"), "n=3");
}

TEST(Template, StatementsAndWhitespaceAsLmEvalsEnvironment) {
  // No trim_blocks / lstrip_blocks, and keep_trailing_newline=True.
  EXPECT_EQ(render("{% for x in lst %}{{x}}{% endfor %}"), "ab");
  EXPECT_EQ(render("{% if flag %}\n  yes\n{% endif %}\n"), "\n  yes\n\n");
  EXPECT_EQ(render("{{ nope is defined }} {{ nope | default('d') }}"), "False d");
}

TEST(Template, RegexReplaceFilterAsLmEvalRegistersIt) {
  EXPECT_EQ(render("{{ question | regex_replace('\\s+', ' ') | trim }}"), "Who?");
  EXPECT_EQ(render("{{ answerKey | regex_replace('[AB]', '(x)') }}"), "(x)");
  EXPECT_THROW(render("{{ question | regex_replace('(W)', '\\\\1') }}"), Error);
}

TEST(Template, UnknownFieldsAreUsageErrors) {
  try {
    render("{{nope}}");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find("'nope' is not a field"), std::string::npos) << e.what();
  }
  EXPECT_THROW(render("{{ question"), Error);
  EXPECT_THROW(render("{{ lst[5] }}"), Error);
}

}  // namespace
}  // namespace reef::eval
