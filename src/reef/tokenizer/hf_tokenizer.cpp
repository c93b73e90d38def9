// Loading and running a byte-level BPE tokenizer.json (see hf_tokenizer.h). Encoding follows HF
// `tokenizers`: added tokens are split out first (non-normalized ones, then normalized ones),
// the rest is pre-tokenized and merged, then the post-processor template adds specials.
#include "reef/tokenizer/hf_tokenizer.h"

#include <nlohmann/json.hpp>

#include <cctype>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {

using nlohmann::json;

namespace {

// Decodes one UTF-8 character at s[i] (valid input assumed; invalid bytes decode as themselves).
uint32_t next_cp(std::string_view s, size_t& i) {
  unsigned char c = s[i];
  size_t n = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 1;
  if (i + n > s.size()) n = 1;
  uint32_t cp = n == 1 ? c : c & (0x7F >> n);
  for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return cp;
}

bool is_unicode_space(uint32_t c) {
  return (c >= 9 && c <= 13) || c == 32 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
         (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
         c == 0x205F || c == 0x3000;
}

// The GPT-2 byte-to-unicode table inverted: code point -> byte, -1 where none.
const std::unordered_map<uint32_t, int>& unicode_to_byte() {
  static const auto* table = [] {
    auto* t = new std::unordered_map<uint32_t, int>();
    for (int b = 0; b < 256; ++b) {
      std::string s = byte_to_unicode(static_cast<uint8_t>(b));
      size_t i = 0;
      (*t)[next_cp(s, i)] = b;
    }
    return t;
  }();
  return *table;
}

// A vocabulary string's bytes under the byte-level mapping; false when a character is unmapped.
bool unmap_bytes(const std::string& token, std::string* bytes) {
  const auto& table = unicode_to_byte();
  bytes->clear();
  for (size_t i = 0; i < token.size();) {
    auto it = table.find(next_cp(token, i));
    if (it == table.end()) return false;
    bytes->push_back(static_cast<char>(it->second));
  }
  return true;
}

std::string token_content(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_object() && v.contains("content")) return v.at("content").get<std::string>();
  return "";
}

}  // namespace

HfTokenizer::HfTokenizer(const std::string& tokenizer_json, const std::string& config_json)
    : file_(tokenizer_json) {
  json_text_ = read_file(tokenizer_json);
  json doc;
  try {
    doc = json::parse(json_text_);
  } catch (const json::exception& e) {
    fail("{}: not valid JSON: {}", file_, e.what());
  }
  try {
    if (!doc.value("normalizer", json()).is_null())
      fail("{}: normalizer type '{}' is not supported (only byte-level BPE without a normalizer)",
           file_, doc["normalizer"].value("type", "?"));
    const json& dec = doc.value("decoder", json());
    if (!dec.is_null() && dec.value("type", "") != "ByteLevel")
      fail("{}: decoder type '{}' is not supported (supported: ByteLevel)", file_,
           dec.value("type", "?"));
    pre_ = std::make_unique<PreTokenizer>(doc.value("pre_tokenizer", json()), file_);
    if (!pre_->has_byte_level())
      fail("{}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", file_);
    load_model(doc.at("model"));
    load_added_tokens(doc.value("added_tokens", json::array()));
    load_post_processor(doc.value("post_processor", json()));
  } catch (const json::exception& e) {
    fail("{}: unexpected tokenizer.json layout: {}", file_, e.what());
  }
  load_config(config_json);
}

void HfTokenizer::load_model(const json& model) {
  std::string type = model.value("type", "BPE");
  if (type != "BPE") fail("{}: model type '{}' is not supported (supported: BPE)", file_, type);
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (model.contains(key) && !model[key].is_null() && !model[key].get<std::string>().empty())
      fail("{}: BPE model option '{}' is not supported", file_, key);
  }
  if (model.value("byte_fallback", false))
    fail("{}: BPE byte_fallback is not supported (only byte-level BPE)", file_);
  if (model.contains("dropout") && !model["dropout"].is_null() && model["dropout"].get<double>() > 0)
    fail("{}: BPE dropout is not supported at encode time", file_);
  bpe_.set_ignore_merges(model.value("ignore_merges", false));
  std::string bytes;
  for (const auto& [token, idv] : model.at("vocab").items()) {
    int32_t id = idv.get<int32_t>();
    if (id < 0) fail("{}: negative id for token '{}'", file_, token);
    if (token_of_id_.size() <= static_cast<size_t>(id)) {
      token_of_id_.resize(id + 1);
      bytes_of_id_.resize(id + 1);
    }
    token_of_id_[id] = token;
    id_of_token_[token] = id;
    if (unmap_bytes(token, &bytes)) {
      bpe_.add_token(bytes, id);
      bytes_of_id_[id] = bytes;
    } else {
      bytes_of_id_[id] = token;
    }
  }
  int32_t rank = 0;
  std::string a, b;
  for (const auto& m : model.at("merges")) {
    std::string left, right;
    if (m.is_array() && m.size() == 2) {
      left = m[0].get<std::string>(), right = m[1].get<std::string>();
    } else if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      if (sp == std::string::npos || s.find(' ', sp + 1) != std::string::npos)
        fail("{}: merge {} is not of the form 'a b'", file_, rank);
      left = s.substr(0, sp), right = s.substr(sp + 1);
    } else {
      fail("{}: merge {} is neither 'a b' nor [a, b]", file_, rank);
    }
    if (!unmap_bytes(left, &a) || !unmap_bytes(right, &b) || !bpe_.add_merge(a, b, rank))
      fail("{}: merge {} ('{}' '{}') names tokens missing from the vocabulary", file_, rank, left,
           right);
    ++rank;
  }
}

void HfTokenizer::load_added_tokens(const json& added) {
  added_by_first_byte_.assign(256, {});
  for (const auto& t : added) {
    AddedToken a{t.at("content").get<std::string>(), t.at("id").get<int32_t>(),
                 t.value("special", false), t.value("normalized", !t.value("special", false)),
                 t.value("lstrip", false), t.value("rstrip", false), t.value("single_word", false)};
    if (a.content.empty()) continue;
    if (token_of_id_.size() <= static_cast<size_t>(a.id)) {
      token_of_id_.resize(a.id + 1);
      bytes_of_id_.resize(a.id + 1);
    }
    token_of_id_[a.id] = a.content;
    id_of_token_[a.content] = a.id;
    std::string bytes;
    bytes_of_id_[a.id] = unmap_bytes(a.content, &bytes) ? bytes : a.content;
    added_by_first_byte_[static_cast<unsigned char>(a.content[0])].push_back(added_.size());
    added_.push_back(std::move(a));
  }
  special_id_.assign(token_of_id_.size(), false);
  for (const auto& a : added_) special_id_[a.id] = a.special;
  vocab_size_ = static_cast<int64_t>(token_of_id_.size());
}

void HfTokenizer::load_post_processor(const json& spec) {
  if (spec.is_null()) return;
  std::string type = spec.value("type", "");
  auto id_of = [&](const std::string& tok) {
    auto it = id_of_token_.find(tok);
    if (it == id_of_token_.end())
      fail("{}: post_processor names token '{}' missing from the vocabulary", file_, tok);
    return it->second;
  };
  if (type == "Sequence") {
    for (const auto& p : spec.at("processors")) load_post_processor(p);
  } else if (type == "ByteLevel") {
    // Only adjusts offsets, which Reef does not produce.
  } else if (type == "TemplateProcessing") {
    if (!template_.empty()) fail("{}: more than one template post_processor", file_);
    for (const auto& piece : spec.at("single")) {
      if (piece.contains("Sequence")) {
        template_.push_back({true, {}});
      } else if (piece.contains("SpecialToken")) {
        std::string name = piece["SpecialToken"].at("id").get<std::string>();
        const json& st = spec.at("special_tokens");
        if (!st.contains(name)) fail("{}: template names undefined special token '{}'", file_, name);
        template_.push_back({false, st[name].at("ids").get<std::vector<int32_t>>()});
      } else {
        fail("{}: TemplateProcessing piece {} is not supported", file_, piece.dump());
      }
    }
  } else if (type == "RobertaProcessing" || type == "BertProcessing") {
    if (!template_.empty()) fail("{}: more than one template post_processor", file_);
    template_.push_back({false, {id_of(spec.at("cls")[0].get<std::string>())}});
    template_.push_back({true, {}});
    template_.push_back({false, {id_of(spec.at("sep")[0].get<std::string>())}});
  } else {
    fail("{}: post_processor type '{}' is not supported (supported: TemplateProcessing, "
         "ByteLevel, RobertaProcessing, BertProcessing, Sequence)",
         file_, type);
  }
}

void HfTokenizer::load_config(const std::string& config_json) {
  std::string bos, eos, pad;
  if (!config_json.empty()) {
    config_text_ = read_file(config_json);
    json cfg;
    try {
      cfg = json::parse(config_text_);
    } catch (const json::exception& e) {
      fail("{}: not valid JSON: {}", config_json, e.what());
    }
    bos = token_content(cfg.value("bos_token", json()));
    eos = token_content(cfg.value("eos_token", json()));
    pad = token_content(cfg.value("pad_token", json()));
    const json& tmpl = cfg.value("chat_template", json());
    if (tmpl.is_string()) {
      chat_template_ = tmpl.get<std::string>();
    } else if (tmpl.is_array()) {  // named templates: keep "default"
      for (const auto& t : tmpl)
        if (t.value("name", "") == "default") chat_template_ = t.value("template", "");
    }
    std::string map_path = join_path(config_json.substr(0, config_json.find_last_of('/') + 1),
                                     "special_tokens_map.json");
    if (path_exists(map_path)) special_map_text_ = read_file(map_path);
  }
  if (eos.empty() && id_of_token_.count("<|endoftext|>")) eos = "<|endoftext|>";
  auto resolve = [&](const std::string& tok, const char* what) -> int32_t {
    if (tok.empty()) return -1;
    int32_t id = token_to_id(tok);
    if (id < 0) fail("{}: {} '{}' is not in the vocabulary of {}", config_json, what, tok, file_);
    return id;
  };
  bos_id_ = resolve(bos, "bos_token");
  eos_id_ = resolve(eos, "eos_token");
  pad_id_ = pad.empty() ? eos_id_ : resolve(pad, "pad_token");
}

int32_t HfTokenizer::token_to_id(const std::string& token) const {
  auto it = id_of_token_.find(token);
  return it == id_of_token_.end() ? -1 : it->second;
}

std::string HfTokenizer::id_to_token(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < token_of_id_.size() ? token_of_id_[id] : "";
}

const HfTokenizer::AddedToken* HfTokenizer::match_added(std::string_view text, size_t pos,
                                                        bool normalized_pass, size_t* begin,
                                                        size_t* end) const {
  // Leftmost-longest over the tokens of this pass, as HF's Aho-Corasick matcher.
  for (size_t i = pos; i < text.size(); ++i) {
    const AddedToken* best = nullptr;
    for (size_t k : added_by_first_byte_[static_cast<unsigned char>(text[i])]) {
      const AddedToken& a = added_[k];
      if (a.normalized != normalized_pass) continue;
      if (text.compare(i, a.content.size(), a.content) != 0) continue;
      if (!best || a.content.size() > best->content.size()) best = &a;
    }
    if (best) {
      *begin = i;
      *end = i + best->content.size();
      return best;
    }
  }
  return nullptr;
}

void HfTokenizer::split_on_added(std::string_view text, bool normalized_pass, bool parse_special,
                                 std::vector<int32_t>& out) const {
  auto flush = [&](std::string_view gap) {
    if (gap.empty()) return;
    if (!normalized_pass) {
      split_on_added(gap, true, parse_special, out);
    } else {
      encode_plain(gap, out);
    }
  };
  auto is_word_byte = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80);
  };
  size_t start_offset = 0, pos = 0, b = 0, e = 0;
  while (const AddedToken* a = match_added(text, pos, normalized_pass, &b, &e)) {
    pos = e;
    if (a->special && !parse_special) continue;
    if (a->single_word && ((b > 0 && is_word_byte(text[b - 1])) ||
                           (e < text.size() && is_word_byte(text[e]))))
      continue;
    size_t start = b, stop = e;
    if (a->lstrip) {
      // Step back over whitespace characters, not past the previous split.
      size_t s = start;
      while (s > start_offset) {
        size_t c = s - 1;
        while (c > start_offset && (static_cast<unsigned char>(text[c]) & 0xC0) == 0x80) --c;
        size_t j = c;
        if (!is_unicode_space(next_cp(text, j))) break;
        s = c;
      }
      start = s;
    }
    if (a->rstrip) {
      while (stop < text.size()) {
        size_t j = stop;
        if (!is_unicode_space(next_cp(text, j))) break;
        stop = j;
      }
      pos = stop;
    }
    flush(text.substr(start_offset, start - start_offset));
    out.push_back(a->id);
    start_offset = stop;
  }
  flush(text.substr(start_offset));
}

void HfTokenizer::encode_plain(std::string_view text, std::vector<int32_t>& out) const {
  thread_local std::vector<std::string> words;
  words.clear();
  pre_->split(text, words);
  for (const auto& w : words) bpe_.encode_word(w, out);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  std::vector<int32_t> body;
  body.reserve(text.size() / 3 + 4);
  if (added_.empty()) {
    encode_plain(text, body);
  } else {
    split_on_added(text, false, opts.parse_special, body);
  }
  if (!opts.add_special_tokens || template_.empty()) return body;
  std::vector<int32_t> out;
  out.reserve(body.size() + 4);
  for (const auto& piece : template_) {
    const auto& src = piece.is_sequence ? body : piece.ids;
    out.insert(out.end(), src.begin(), src.end());
  }
  return out;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids, bool keep_special) const {
  return decode_id_bytes(bytes_of_id_, special_id_, ids, keep_special, file_);
}

void HfTokenizer::save(const std::string& dir) const {
  make_dirs(dir);
  write_file_atomic(join_path(dir, "tokenizer.json"), json_text_);
  if (!config_text_.empty()) write_file_atomic(join_path(dir, "tokenizer_config.json"), config_text_);
  if (!special_map_text_.empty())
    write_file_atomic(join_path(dir, "special_tokens_map.json"), special_map_text_);
}

}  // namespace reef
