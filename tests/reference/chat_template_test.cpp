// Chat templates against transformers: tests/reference/chat_template_reference.py builds a
// tokenizer folder per fixture template (tests/data/chat_templates: Llama 3/3.1, Qwen2.5, Qwen3
// with <think>, Mistral v1/v3 with tools, Gemma/Gemma 3, SmolLM2, generation-tagged variants, a
// whitespace-control template and one exercising the expression features) and renders ~800
// conversations with apply_chat_template. Reef must load each folder the same way (chat_template
// .jinja, the config string, the config list with a tool_use variant), render byte-identical
// text, fail where transformers fails (with raise_exception's message), and build SFT samples
// whose ids and loss mask equal transformers' return_assistant_tokens_mask.
#include "reef/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/data/sft.h"
#include "reef/tokenizer/tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

class ChatTemplateReference : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = testing::cached_python_output(
        testing::source_dir() + "/tests/reference/chat_template_reference.py", {});
    std::istringstream in(read_file(dir_ + "/cases.jsonl"));
    for (std::string line; std::getline(in, line);)
      if (!line.empty()) cases_.push_back(ojson::parse(line));
  }
  static ChatOptions options(const ojson& c) {
    ChatOptions o;
    o.add_generation_prompt = c["add_generation_prompt"].get<bool>();
    o.tools = c["tools"];
    o.variables = c["variables"];
    return o;
  }
  static std::string trace(const ojson& c) {
    return c["template"].get<std::string>() + " / " + c["conversation"].get<std::string>() +
           " / agp=" + c["add_generation_prompt"].dump() +
           " / tools=" + (c["tools"].is_null() ? "none" : "yes") +
           " / vars=" + c["variables"].dump();
  }
  static std::string dir_;
  static std::vector<ojson> cases_;
};
std::string ChatTemplateReference::dir_;
std::vector<ojson> ChatTemplateReference::cases_;

TEST_F(ChatTemplateReference, RendersByteIdenticalToApplyChatTemplate) {
  ASSERT_GT(cases_.size(), 700u);
  std::map<std::string, std::unique_ptr<ChatTemplate>> templates;
  int rendered = 0, refused = 0;
  for (const ojson& c : cases_) {
    SCOPED_TRACE(trace(c));
    const std::string dir = c["dir"].get<std::string>();
    if (!templates.count(dir))
      templates[dir] =
          std::make_unique<ChatTemplate>(ChatTemplate::from_model_dir(dir_ + "/" + dir));
    const ChatTemplate& t = *templates[dir];
    if (c.contains("text")) {
      std::string got;
      try {
        got = t.render(c["messages"], options(c)).text;
      } catch (const Error& e) {
        ADD_FAILURE() << "Reef failed where transformers rendered: " << e.what();
        continue;
      }
      EXPECT_EQ(got, c["text"].get<std::string>());
      ++rendered;
    } else {
      try {
        t.render(c["messages"], options(c));
        ADD_FAILURE() << "rendered where transformers failed with " << c["error"];
      } catch (const Error& e) {
        if (c["error_type"] == "TemplateError")
          EXPECT_NE(std::string(e.what()).find("raise_exception: " + c["error"].get<std::string>()),
                    std::string::npos)
              << e.what();
        EXPECT_EQ(e.exit_code(), 2);
        ++refused;
      }
    }
  }
  std::cout << rendered << " byte-identical renders, " << refused << " refusals matched\n";
}

// The SFT builder on generation-tagged templates: ids and loss mask equal transformers'
// apply_chat_template(tokenize=True, return_assistant_tokens_mask=True).
TEST_F(ChatTemplateReference, SftMaskEqualsReturnAssistantTokensMask) {
  int compared = 0;
  for (const ojson& c : cases_) {
    if (!c.contains("assistant_masks")) continue;
    SCOPED_TRACE(trace(c));
    const std::string dir = dir_ + "/" + c["dir"].get<std::string>();
    auto tok = load_tokenizer(dir);
    SftSampleBuilder builder(*tok, ChatTemplate::from_model_dir(dir), c["variables"]);
    ojson record = {{"messages", c["messages"]}, {"tools", c["tools"]}};
    SftSample s = builder.build(record, "case");
    EXPECT_EQ(s.input_ids, c["input_ids"].get<std::vector<int32_t>>());
    EXPECT_EQ(std::vector<int>(s.loss_mask.begin(), s.loss_mask.end()),
              c["assistant_masks"].get<std::vector<int>>());
    ++compared;
  }
  EXPECT_GT(compared, 40);
  std::cout << compared << " masks equal to transformers'\n";
}

// Without {% generation %}, prefix rendering finds the same tokens: llama3.jinja and
// mistral_v1.jinja (no tags; byte-level and Metaspace tokenizers) and the built-in llama3,
// chatml and mistral templates against transformers' masks for the tagged equivalents.
TEST_F(ChatTemplateReference, PrefixRenderingMaskEqualsGenerationTagMask) {
  int compared = 0;
  for (const ojson& c : cases_) {
    if (!c.contains("assistant_masks")) continue;
    const std::string name = c["template"].get<std::string>();
    std::vector<std::pair<std::string, std::string>> variants;  // (tokenizer dir, template)
    if (name == "llama3_gen") variants = {{"llama3", ""}, {"llama3_gen", "llama3"}};
    if (name == "chatml_gen") variants = {{"chatml_gen", "chatml"}};
    if (name == "mistral_gen")
      variants = {{"mistral_v1", ""}, {"mistral_gen", "mistral"}};  // Metaspace
    for (const auto& [dir_name, builtin] : variants) {
      SCOPED_TRACE(trace(c) + " via " + dir_name + (builtin.empty() ? "" : " builtin:" + builtin));
      const std::string dir = dir_ + "/" + dir_name;
      auto tok = load_tokenizer(dir);
      ChatTemplate t =
          builtin.empty() ? ChatTemplate::from_model_dir(dir) : ChatTemplate::builtin(builtin, dir);
      ASSERT_EQ(t.has_generation_blocks(), !builtin.empty());
      SftSampleBuilder builder(*tok, t);
      SftSample s = builder.build(ojson{{"messages", c["messages"]}}, "case");
      EXPECT_EQ(s.input_ids, c["input_ids"].get<std::vector<int32_t>>());
      EXPECT_EQ(std::vector<int>(s.loss_mask.begin(), s.loss_mask.end()),
                c["assistant_masks"].get<std::vector<int>>());
      ++compared;
    }
  }
  EXPECT_GT(compared, 15);
}

}  // namespace
}  // namespace reef
