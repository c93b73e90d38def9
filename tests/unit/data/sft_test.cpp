// SFT samples on tokenizers whose tokens are known by construction (Reef's byte tokenizer: one
// token per byte, so the expected mask is the assistant text's byte range, found by searching the
// rendered string): generation-tagged and prefix-rendered templates, prompt/completion pairs
// (strings and message lists), and the errors that replace silent masks: no assistant span, a
// template that renders nothing but the reply, a span that cuts a token, a template that rewrites
// earlier turns, and malformed JSONL lines, each naming file:line.
#include "reef/data/sft.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/tokenizer/hf_tokenizer.h"
#include "testing/testing.h"

namespace reef {
namespace {

using ojson = nlohmann::ordered_json;

// The byte-level mask expected when `supervised` substrings of `text` (each found after the
// previous one) are the assistant's.
std::vector<uint8_t> byte_mask(const std::string& text,
                               const std::vector<std::string>& supervised) {
  std::vector<uint8_t> m(text.size(), 0);
  size_t from = 0;
  for (const auto& s : supervised) {
    size_t at = text.find(s, from);
    EXPECT_NE(at, std::string::npos) << s;
    if (at == std::string::npos) continue;
    std::fill(m.begin() + at, m.begin() + at + s.size(), 1);
    from = at + s.size();
  }
  return m;
}

std::string error_of(const SftSampleBuilder& b, const char* record,
                     const std::string& src = "f.jsonl:3") {
  try {
    b.build(ojson::parse(record), src);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const char* kConversation = R"({"messages": [
  {"role": "system", "content": "Be nice."}, {"role": "user", "content": "Hi"},
  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
  {"role": "assistant", "content": "See you."}]})";

TEST(SftSample, GenerationTagsAndPrefixRenderingMaskExactlyTheReplies) {
  ByteTokenizer tok;
  const std::string text =
      "<|im_start|>system\nBe "
      "nice.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
      "Hello!<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\nSee "
      "you.<|im_end|>\n";
  const auto expected = byte_mask(text, {"Hello!<|im_end|>", "See you.<|im_end|>"});
  // The built-in chatml has {% generation %}; the same layout without it goes by prefixes.
  ChatTemplate plain(
      "{% for m in messages %}{{ '<|im_start|>' + m.role + '\\n' + m.content + '<|im_end|>\\n' "
      "}}{% endfor %}"
      "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
      "plain");
  for (const ChatTemplate& t : {ChatTemplate::builtin("chatml"), plain}) {
    SCOPED_TRACE(t.name());
    SftSampleBuilder b(tok, t);
    SftSample s = b.build(ojson::parse(kConversation), "a.jsonl:1");
    EXPECT_EQ(s.input_ids, tok.encode(text));
    EXPECT_EQ(s.loss_mask, expected);
    EXPECT_EQ(s.source, "a.jsonl:1");
    EXPECT_EQ(s.supervised_tokens(),
              static_cast<int64_t>(std::string("Hello!<|im_end|>See you.<|im_end|>").size()));
  }
}

TEST(SftSample, PromptCompletionPairs) {
  ByteTokenizer tok;
  SftSampleBuilder b(tok, ChatTemplate::builtin("chatml"));
  SftSample s = b.build(ojson::parse(R"({"prompt": "2+2=", "completion": " 4"})"), "p:1");
  std::vector<int32_t> ids = tok.encode("2+2= 4");
  ids.push_back(tok.eos_id());
  EXPECT_EQ(s.input_ids, ids);
  EXPECT_EQ(s.loss_mask, (std::vector<uint8_t>{0, 0, 0, 0, 1, 1, 1}));
  // Message lists: loss on what the completion adds after the prompt's generation prompt.
  SftSample c = b.build(ojson::parse(R"({"prompt": [{"role": "user", "content": "Q"}],
                                        "completion": [{"role": "assistant", "content": "A"}]})"),
                        "p:2");
  const std::string text = "<|im_start|>user\nQ<|im_end|>\n<|im_start|>assistant\nA<|im_end|>\n";
  EXPECT_EQ(c.input_ids, tok.encode(text));
  EXPECT_EQ(c.loss_mask, byte_mask(text, {"A<|im_end|>"}));
}

TEST(SftSample, BadTemplatesAndRecordsAreErrorsNamingTheSample) {
  ByteTokenizer tok;
  SftSampleBuilder chatml(tok, ChatTemplate::builtin("chatml"));
  EXPECT_NE(error_of(chatml, R"({"messages": [{"role": "user", "content": "only a question"}]})")
                .find("f.jsonl:3: the chat template marks no assistant text"),
            std::string::npos);
  EXPECT_NE(error_of(chatml, R"({"text": "x"})").find("f.jsonl:3: expected \"messages\""),
            std::string::npos);
  EXPECT_NE(error_of(chatml, R"({"messages": []})").find("f.jsonl:3:"), std::string::npos);
  // A template that renders only the reply would train on everything.
  SftSampleBuilder bare(
      tok, ChatTemplate("{% for m in messages %}{% if m.role == 'assistant' %}"
                        "{% generation %}{{ m.content }}{% endgeneration %}{% endif %}{% endfor %}",
                        "bare"));
  EXPECT_NE(error_of(bare, kConversation).find("f.jsonl:3: every token is supervised"),
            std::string::npos);
  // A template that changes earlier turns once later ones follow cannot be split by prefixes.
  SftSampleBuilder shifty(
      tok, ChatTemplate("{% for m in messages %}{{ m.role }}{% if loop.last %}!{% endif %}"
                        "{{ m.content }};{% endfor %}",
                        "shifty"));
  EXPECT_NE(error_of(shifty, kConversation).find("f.jsonl:3: message 2:"), std::string::npos);
  // raise_exception reaches the user with the sample's location.
  SftSampleBuilder strict(tok,
                          ChatTemplate("{{ raise_exception('roles must alternate') }}", "strict"));
  EXPECT_EQ(error_of(strict, kConversation),
            "f.jsonl:3: strict: raise_exception: roles must alternate");
}

// A byte-level BPE tokenizer.json with the given merges (into tokens 256, 257, ...) and
// normalizer (null: none).
std::string write_byte_bpe(const testing::ScratchDir& dir,
                           const std::vector<std::pair<std::string, std::string>>& merges,
                           const ojson& normalizer) {
  ojson vocab = ojson::object();
  for (int b = 0; b < 256; ++b) vocab[byte_to_unicode(static_cast<uint8_t>(b))] = b;
  ojson m = ojson::array();
  for (const auto& [a, b] : merges) {
    vocab[a + b] = static_cast<int>(vocab.size());
    m.push_back(ojson::array({a, b}));
  }
  ojson spec = {{"version", "1.0"},
                {"added_tokens", ojson::array()},
                {"normalizer", normalizer},
                {"pre_tokenizer",
                 {{"type", "ByteLevel"},
                  {"add_prefix_space", false},
                  {"trim_offsets", true},
                  {"use_regex", false}}},
                {"post_processor", nullptr},
                {"decoder",
                 {{"type", "ByteLevel"},
                  {"add_prefix_space", true},
                  {"trim_offsets", true},
                  {"use_regex", true}}},
                {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}}}};
  write_file_atomic(dir / "tokenizer.json", spec.dump());
  return dir / "tokenizer.json";
}

// Only merge "bc": a reply starting at "c" cuts that token.
TEST(SftSample, SpanCuttingATokenIsAnError) {
  testing::ScratchDir dir;
  write_byte_bpe(dir, {{"b", "c"}}, nullptr);
  HfTokenizer tok(dir / "tokenizer.json", "");
  ASSERT_EQ(tok.encode("abcd"), (std::vector<int32_t>{'a', 256, 'd'}));
  SftSampleBuilder cut(
      tok, ChatTemplate(
               "{% for m in messages %}{% if m.role == 'assistant' %}{% generation %}"
               "{{ m.content }}{% endgeneration %}{% else %}{{ m.content }}{% endif %}{% endfor %}",
               "cut"));
  EXPECT_NE(
      error_of(
          cut,
          R"({"messages": [{"role": "user", "content": "ab"}, {"role": "assistant", "content": "cd"}]})")
          .find("f.jsonl:3: the assistant text starting at byte 2 ('cd') begins inside token 1"),
      std::string::npos);
  SftSample ok = cut.build(
      ojson::parse(
          R"({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "bcd"}]})"),
      "x");
  EXPECT_EQ(ok.loss_mask, (std::vector<uint8_t>{0, 1, 1}));
}

// An NFC normalizer rewrites decomposed text, so token texts no longer spell the rendering: the
// builder then checks each span boundary against the encoding of the text before it.
TEST(SftSample, NormalizedTextFallsBackToBoundaryEncodings) {
  testing::ScratchDir dir;
  HfTokenizer tok(write_byte_bpe(dir, {}, {{"type", "NFC"}}), "");
  SftSampleBuilder b(tok, ChatTemplate::builtin("chatml"));
  SftSample s = b.build(ojson::parse(R"({"messages": [{"role": "user", "content": "Cafe\u0301?"},
                                                     {"role": "assistant", "content": "Oui, cafe\u0301!"}]})"),
                        "n:1");
  // One token a byte of the NFC text ("é" precomposed, 2 bytes).
  const std::string nfc =
      "<|im_start|>user\nCaf\u00e9?<|im_end|>\n<|im_start|>assistant\nOui, caf\u00e9!<|im_end|>\n";
  EXPECT_EQ(s.input_ids, tok.encode(nfc));
  EXPECT_EQ(s.loss_mask, byte_mask(nfc, {"Oui, caf\u00e9!<|im_end|>"}));
}

TEST(SftSample, ReadsJsonlNamingBadLines) {
  testing::ScratchDir dir;
  ByteTokenizer tok;
  SftSampleBuilder b(tok, ChatTemplate::builtin("chatml"));
  std::string flat;
  for (char c : std::string(kConversation))
    if (c != '\n') flat += c;
  write_file_atomic(dir / "ok.jsonl",
                    flat + "\n\n" + R"({"prompt": "a", "completion": "b"})" + "\n");
  auto samples = read_sft_jsonl(dir / "ok.jsonl", b);
  ASSERT_EQ(samples.size(), 2u);
  EXPECT_EQ(samples[1].source, dir / "ok.jsonl:3");
  EXPECT_EQ(read_sft_jsonl(dir / "ok.jsonl", b, 1).size(), 1u);
  write_file_atomic(dir / "bad.jsonl", flat + "\n{oops\n");
  try {
    read_sft_jsonl(dir / "bad.jsonl", b);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "bad.jsonl:2: not valid JSON"), std::string::npos)
        << e.what();
    EXPECT_EQ(e.exit_code(), 2);
  }
}

}  // namespace
}  // namespace reef
