// ChatTemplate: where the template is found (chat_template.jinja over tokenizer_config.json; the
// config's string and {name, template} list forms; tool_use picked only with tools), the special
// tokens it sees, the message clean-up apply_chat_template does (None-valued keys dropped,
// reasoning fields aliased), tools = None when absent, extra variables, built-in fallbacks, and
// the one-line errors for a folder without a template and a raise_exception.
#include "reef/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

ojson msgs(const char* text) { return ojson::parse(text); }

TEST(ChatTemplate, JinjaFileWinsOverTheConfigAndSpecialTokensComeFromTheConfig) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "tokenizer_config.json",
                    R"({"chat_template": "config", "bos_token": {"content": "<s>", "special": true},
                        "eos_token": "</s>"})");
  write_file_atomic(dir / "special_tokens_map.json",
                    R"({"eos_token": "ignored", "pad_token": "<pad>"})");
  write_file_atomic(dir / "chat_template.jinja",
                    "{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token "
                    "}}{{ pad_token }}\n");
  ChatTemplate t = ChatTemplate::from_model_dir(dir.path());
  EXPECT_EQ(t.render(msgs(R"([{"role": "user", "content": "hi"}])")).text, "<s>hi</s><pad>");
  EXPECT_TRUE(ChatTemplate::model_dir_has_template(dir.path()));
}

TEST(ChatTemplate, ConfigListPicksToolUseOnlyWithTools) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "tokenizer_config.json",
                    R"({"chat_template": [{"name": "default", "template": "D{{ tools }}"},
                                          {"name": "tool_use", "template": "T{{ tools | length }}"}]})");
  ChatTemplate t = ChatTemplate::from_model_dir(dir.path());
  const ojson m = msgs(R"([{"role": "user", "content": "x"}])");
  EXPECT_EQ(t.render(m).text, "DNone");
  ChatOptions o;
  o.tools = ojson::parse(R"([{"type": "function"}])");
  EXPECT_EQ(t.render(m, o).text, "T1");
}

TEST(ChatTemplate, MessagesAreCleanedAsApplyChatTemplateDoes) {
  ChatTemplate t(
      "{% for m in messages %}{{ m | tojson }}{{ 'name' in m }}{% endfor %}"
      "|{{ add_generation_prompt }}|{{ documents }}|{{ enable_thinking }}",
      "inline");
  ChatOptions o;
  o.add_generation_prompt = true;
  o.variables = ojson::parse(R"({"enable_thinking": false})");
  EXPECT_EQ(
      t.render(msgs(R"([{"role": "assistant", "name": null, "content": "a",
                                "reasoning_content": "r"}])"),
               o)
          .text,
      R"({"thinking": "r", "role": "assistant", "content": "a", "reasoning_content": "r"}False|True|None|False)");
}

TEST(ChatTemplate, BuiltinsAndErrors) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "tokenizer_config.json", R"({"bos_token": "<|begin_of_text|>"})");
  try {
    ChatTemplate::from_model_dir(dir.path());
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("no chat template"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("chatml"), std::string::npos) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
  ChatTemplate l = ChatTemplate::load(dir.path(), "llama3");
  ChatOptions o;
  o.add_generation_prompt = true;
  EXPECT_EQ(l.render(msgs(R"([{"role": "user", "content": " hi "}])"), o).text,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nhi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  ChatRender c = ChatTemplate::builtin("chatml").render(
      msgs(R"([{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}])"));
  EXPECT_EQ(c.text, "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\na<|im_end|>\n");
  ASSERT_EQ(c.generation_spans.size(), 1u);
  EXPECT_EQ(c.text.substr(c.generation_spans[0].first,
                          c.generation_spans[0].second - c.generation_spans[0].first),
            "a<|im_end|>");
  EXPECT_THROW(ChatTemplate::builtin("nope"), Error);
  ChatTemplate r(
      "{% if messages[0].role != 'user' %}{{ raise_exception('first must be user') }}{% endif %}",
      "m.jinja");
  try {
    r.render(msgs(R"([{"role": "assistant", "content": "x"}])"));
    FAIL() << "expected raise_exception";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()), "m.jinja: raise_exception: first must be user");
  }
}

// end_of_turn: what the template writes after an assistant reply, the stop string of chat
// serving; "" when it writes nothing there or refuses the probe conversation.
TEST(ChatTemplate, EndOfTurnIsWhatFollowsAnAssistantReply) {
  EXPECT_EQ(ChatTemplate::builtin("chatml").end_of_turn(), "<|im_end|>");
  EXPECT_EQ(ChatTemplate::builtin("llama3").end_of_turn(), "<|eot_id|>");
  EXPECT_EQ(ChatTemplate::builtin("gemma").end_of_turn(), "<end_of_turn>");
  EXPECT_EQ(
      ChatTemplate("{% for m in messages %}{{ m.content }}\n\n{% endfor %}", "plain").end_of_turn(),
      "");
  EXPECT_EQ(ChatTemplate("{{ raise_exception('no assistants here') }}", "strict").end_of_turn(),
            "");
}

TEST(ChatTemplate, RenderConversationsReadsJsonlAndNamesFileAndLine) {
  testing::ScratchDir dir;
  ChatTemplate t = ChatTemplate::named("chatml");
  write_file_atomic(dir / "c.jsonl",
                    "[{\"role\": \"user\", \"content\": \"a\"}]\n\n"
                    "{\"messages\": [{\"role\": \"user\", \"content\": \"b\"}]}\n");
  auto r = render_conversations(t, dir / "c.jsonl", {});
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].source, dir / "c.jsonl:1");
  EXPECT_EQ(r[1].source, dir / "c.jsonl:3");
  EXPECT_EQ(r[0].text, t.render(msgs(R"([{"role": "user", "content": "a"}])")).text);
  EXPECT_EQ(r[1].text, t.render(msgs(R"([{"role": "user", "content": "b"}])")).text);
  write_file_atomic(dir / "bad.jsonl", "[]\n{\"nope\": 1}\n");
  try {
    render_conversations(t, dir / "bad.jsonl", {});
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("bad.jsonl:2: expected {\"messages\""), std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace reef
