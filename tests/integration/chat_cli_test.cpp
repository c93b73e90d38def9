// End-to-end tests of `reef tokenizer chat` and `reef data inspect --sft` through the real
// binary, on a folder with Reef's byte tokenizer and a ChatML template in tokenizer_config.json
// (ChatML's published layout gives the expected text): the exact rendering, the generation
// prompt, several conversations, template variables, built-in fallbacks, the marked supervised
// tokens and counts, and the one-line errors (exit 2) for a missing template, a syntax error
// with its line and column, raise_exception, and a sample without an assistant reply.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

using testing::run_reef;

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

const char* kChatml =
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' "
    "}}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% if think is defined and not think %}{{ '<think>\\n\\n</think>\\n\\n' }}{% endif %}{% endif "
    "%}";

// A model folder: byte tokenizer plus `template` (empty: none) in tokenizer_config.json.
std::string model_dir(const testing::ScratchDir& dir, const std::string& name,
                      const std::string& tmpl) {
  std::string folder = dir / name;
  make_dirs(folder);
  nlohmann::json cfg = {{"reef_tokenizer", "byte"}, {"eos_token", "<|endoftext|>"}};
  if (!tmpl.empty()) cfg["chat_template"] = tmpl;
  write_file_atomic(folder + "/tokenizer_config.json", cfg.dump());
  return folder;
}

TEST(ChatCli, TokenizerChatPrintsTheRenderedConversation) {
  testing::ScratchDir dir;
  const std::string model = model_dir(dir, "m", kChatml);
  write_file_atomic(
      dir / "one.jsonl",
      R"({"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi ✓"}]})"
      "\n");
  auto r = run_reef({"tokenizer", "chat", "--model", model, "--messages", dir / "one.jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi ✓<|im_end|>\n");

  r = run_reef({"tokenizer", "chat", "--model", model, "--messages", dir / "one.jsonl",
                "--add-generation-prompt", "--var", "think=false"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi ✓<|im_end|>\n"
            "<|im_start|>assistant\n<think>\n\n</think>\n\n");

  // Several conversations (bare lists too) get a header each.
  write_file_atomic(dir / "two.jsonl", R"([{"role": "user", "content": "a"}])"
                                       "\n\n"
                                       R"({"messages": [{"role": "user", "content": "b"}]})"
                                       "\n");
  r = run_reef({"tokenizer", "chat", "--model", model, "--messages", dir / "two.jsonl"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "=== " + dir / "two.jsonl:1 ===\n<|im_start|>user\na<|im_end|>\n\n=== " +
                          dir / "two.jsonl:3 ===\n<|im_start|>user\nb<|im_end|>\n\n");

  // A folder without a template: one line naming the built-ins; --template picks one.
  const std::string bare = model_dir(dir, "bare", "");
  r = run_reef({"tokenizer", "chat", "--model", bare, "--messages", dir / "one.jsonl"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "no chat template")) << r.output;
  EXPECT_TRUE(contains(r.output, "chatml")) << r.output;
  r = run_reef({"tokenizer", "chat", "--model", bare, "--messages", dir / "one.jsonl", "--template",
                "llama3"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output,
            "<|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
            "<|start_header_id|>user<|end_header_id|>\n\nHi ✓<|eot_id|>");
}

TEST(ChatCli, TemplateErrorsAreOneLineExitTwo) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "c.jsonl", R"({"messages": [{"role": "assistant", "content": "x"}]})"
                                     "\n");
  auto r = run_reef({"tokenizer", "chat", "--model",
                     model_dir(dir, "syntax", "ok\n{% for m in messages %}\n{{ m.role }"),
                     "--messages", dir / "c.jsonl"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "tokenizer_config.json:3:")) << r.output;
  EXPECT_TRUE(contains(r.output, "template syntax error")) << r.output;
  r = run_reef({"tokenizer", "chat", "--model",
                model_dir(dir, "strict",
                          "{% if messages[0].role != 'user' %}{{ raise_exception('Conversation "
                          "must start with a user message') }}{% endif %}"),
                "--messages", dir / "c.jsonl"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, dir / "c.jsonl:1: ")) << r.output;
  EXPECT_TRUE(contains(r.output, "raise_exception: Conversation must start with a user message"))
      << r.output;
}

TEST(ChatCli, DataInspectSftMarksTheSupervisedTokens) {
  testing::ScratchDir dir;
  const std::string model = model_dir(dir, "m", kChatml);
  write_file_atomic(
      dir / "sft.jsonl",
      R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello!"}]})"
      "\n"
      R"({"prompt": "2+2=", "completion": "4"})"
      "\n");
  auto r = run_reef({"data", "inspect", "--sft", dir / "sft.jsonl", "--model", model, "--n", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  // One token a byte: 52 bytes of ChatML before the reply, "Hello!<|im_end|>" (16), "\n".
  const std::string first =
      "<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n[[Hello!<|im_end|>]]\n";
  EXPECT_TRUE(contains(r.output,
                       "--- sample 1 (" + dir / "sft.jsonl:1): 69 tokens, 16 supervised\n" + first))
      << r.output;
  EXPECT_TRUE(contains(
      r.output,
      "--- sample 2 (" + dir / "sft.jsonl:2): 6 tokens, 2 supervised\n2+2=[[4<|endoftext|>]]\n"))
      << r.output;
  EXPECT_TRUE(contains(
      r.output, dir / "sft.jsonl: 2 samples, 75 tokens, 18 supervised (24.0%), longest 69 tokens"))
      << r.output;

  write_file_atomic(
      dir / "bad.jsonl",
      R"({"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "ok"}]})"
      "\n"
      R"({"messages": [{"role": "user", "content": "no reply"}]})"
      "\n");
  r = run_reef({"data", "inspect", "--sft", dir / "bad.jsonl", "--model", model});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, dir / "bad.jsonl:2: the chat template marks no assistant text"))
      << r.output;
  r = run_reef({"data", "inspect", "--sft", dir / "bad.jsonl"});
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_TRUE(contains(r.output, "--model")) << r.output;
}

}  // namespace
}  // namespace reef
