// Decoder steps with HF `tokenizers` semantics (see decoder.h). Each step maps the token list
// to a new one; the result is the concatenation of what is left.
#include "reef/tokenizer/decoder.h"

#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/tokenizer/normalizer.h"
#include "reef/tokenizer/pre_tokenizer.h"
#include "reef/tokenizer/regex.h"
#include "reef/tokenizer/tokenizer.h"

namespace reef {

namespace {

// The GPT-2 byte-to-unicode table inverted: code point -> byte, -1 where none.
const std::vector<int>& unicode_to_byte() {
  static const auto* table = [] {
    auto* t = new std::vector<int>(512, -1);
    for (int b = 0; b < 256; ++b) {
      std::string s = byte_to_unicode(static_cast<uint8_t>(b));
      size_t i = 0;
      (*t)[next_code_point(s, i)] = b;
    }
    return t;
  }();
  return *table;
}

// "<0xXX>" -> the byte, or -1.
int byte_token(const std::string& t) {
  if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
  auto hex = [](char c) {
    return c >= '0' && c <= '9'   ? c - '0'
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                  : -1;
  };
  int hi = hex(t[3]), lo = hex(t[4]);
  return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

}  // namespace

bool unmap_byte_level(std::string_view token, std::string* bytes) {
  const auto& table = unicode_to_byte();
  bytes->clear();
  for (size_t i = 0; i < token.size();) {
    uint32_t cp = next_code_point(token, i);
    if (cp >= table.size() || table[cp] < 0) return false;
    bytes->push_back(static_cast<char>(table[cp]));
  }
  return true;
}

Decoder::Decoder(const nlohmann::json& spec, const std::string& file) {
  if (spec.is_null()) {
    join_with_spaces_ = true;
  } else {
    add_steps(spec, file);
  }
}

Decoder::~Decoder() = default;

void Decoder::add_steps(const nlohmann::json& spec, const std::string& file) {
  std::string type = spec.value("type", "");
  Step step;
  if (type == "Sequence") {
    for (const auto& s : spec.at("decoders")) add_steps(s, file);
    return;
  } else if (type == "ByteLevel") {
    step.kind = Kind::kByteLevel;
  } else if (type == "Metaspace") {
    step.kind = Kind::kMetaspace;
    step.a = spec.value("replacement", "\xE2\x96\x81");
    step.prepend = metaspace_prepend_scheme(spec, file) != "never";
  } else if (type == "Replace") {
    step.kind = Kind::kReplace;
    parse_replace_spec(spec, file + ": Replace decoder", &step.a, &step.regex, &step.b);
  } else if (type == "ByteFallback") {
    step.kind = Kind::kByteFallback;
  } else if (type == "Fuse") {
    step.kind = Kind::kFuse;
  } else if (type == "Strip") {
    step.kind = Kind::kStrip;
    step.a = spec.value("content", " ");
    step.start = spec.value("start", size_t{0});
    step.stop = spec.value("stop", size_t{0});
  } else {
    fail(
        "{}: decoder type '{}' is not supported (supported: ByteLevel, Metaspace, Replace, "
        "ByteFallback, Fuse, Strip, Sequence)",
        file, type);
  }
  steps_.push_back(std::move(step));
}

void Decoder::apply(const Step& step, std::vector<std::string>& tokens) {
  switch (step.kind) {
    case Kind::kByteLevel: {
      // A token with a character outside the table stays as its own bytes.
      std::string out, bytes;
      for (const auto& t : tokens) out += unmap_byte_level(t, &bytes) ? bytes : t;
      tokens.assign(1, std::move(out));
      break;
    }
    case Kind::kMetaspace: {
      // Every replacement character in the first token is dropped when a prefix was prepended.
      for (size_t i = 0; i < tokens.size(); ++i)
        apply_replace(tokens[i], step.a, nullptr, i == 0 && step.prepend ? "" : " ");
      break;
    }
    case Kind::kReplace:
      for (auto& t : tokens) apply_replace(t, step.a, step.regex.get(), step.b);
      break;
    case Kind::kByteFallback: {
      // Runs of <0xXX> tokens become one token of their bytes (HF: U+FFFD per byte when the run
      // is not valid UTF-8; Reef keeps the bytes).
      std::vector<std::string> out;
      std::string run;
      bool in_run = false;
      for (auto& t : tokens) {
        int b = byte_token(t);
        if (b >= 0) {
          run.push_back(static_cast<char>(b));
          in_run = true;
          continue;
        }
        if (in_run) out.push_back(std::move(run)), run.clear(), in_run = false;
        out.push_back(std::move(t));
      }
      if (in_run) out.push_back(std::move(run));
      tokens.swap(out);
      break;
    }
    case Kind::kFuse: {
      std::string out;
      for (const auto& t : tokens) out += t;
      tokens.assign(1, std::move(out));
      break;
    }
    case Kind::kStrip:
      for (auto& t : tokens) {
        size_t b = 0, e = t.size();
        for (size_t k = 0; k < step.start && t.compare(b, step.a.size(), step.a) == 0; ++k)
          b += step.a.size();
        for (size_t k = 0; k < step.stop && e >= b + step.a.size() &&
                           t.compare(e - step.a.size(), step.a.size(), step.a) == 0;
             ++k)
          e -= step.a.size();
        t = t.substr(b, e - b);
      }
      break;
  }
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
  std::string out;
  if (join_with_spaces_) {
    for (size_t i = 0; i < tokens.size(); ++i) (i ? out += ' ' : out) += tokens[i];
    return out;
  }
  for (const auto& step : steps_) apply(step, tokens);
  for (const auto& t : tokens) out += t;
  return out;
}

}  // namespace reef
