// Loading and running a BPE tokenizer.json (see hf_tokenizer.h). Encoding follows HF
// `tokenizers`: non-normalized added tokens are split out of the raw text, each gap is
// normalized and normalized added tokens are split out of it, the rest is pre-tokenized and
// merged, then the post-processor template adds specials. Decoding runs the decoder steps over
// the ids' vocabulary strings (byte-level decoding is a concatenation of precomputed bytes).
#include "reef/tokenizer/hf_tokenizer.h"

#include <cctype>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/strings.h"

namespace reef {

using nlohmann::json;

namespace {

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
    normalizer_ = std::make_unique<Normalizer>(doc.value("normalizer", json()), file_);
    pre_ = std::make_unique<PreTokenizer>(doc.value("pre_tokenizer", json()), file_);
    byte_level_ = pre_->has_byte_level();
    decoder_ = std::make_unique<Decoder>(doc.value("decoder", json()), file_);
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
  if (model.contains("dropout") && !model["dropout"].is_null() &&
      model["dropout"].get<double>() > 0)
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
    if (!byte_level_) {
      bpe_.add_token(token, id);  // character level: keyed by the string itself
    } else if (unmap_byte_level(token, &bytes)) {
      bpe_.add_token(bytes, id);
      bytes_of_id_[id] = bytes;
    } else {
      bytes_of_id_[id] = token;
    }
  }
  // Byte level: the words are raw bytes, so merge parts are unmapped first.
  auto part = [&](const std::string& s, std::string* out) {
    if (byte_level_) return unmap_byte_level(s, out);
    *out = s;
    return true;
  };
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
    if (!part(left, &a) || !part(right, &b) || !bpe_.add_merge(a, b, rank))
      fail("{}: merge {} ('{}' '{}') names tokens missing from the vocabulary", file_, rank, left,
           right);
    ++rank;
  }
  // HF looks the unk token up in the model vocabulary. When it is missing there, HF fails on an
  // unknown character; Reef treats the file as having no unk (the character is dropped).
  const json& unk = model.value("unk_token", json());
  if (unk.is_string()) {
    auto it = id_of_token_.find(unk.get<std::string>());
    bpe_.set_unknown(it == id_of_token_.end() ? -1 : it->second, model.value("fuse_unk", false));
  }
  if (!byte_level_) bpe_.set_char_level(model.value("byte_fallback", false));
}

void HfTokenizer::load_added_tokens(const json& added) {
  added_by_first_byte_.assign(256, {});
  for (const auto& t : added) {
    AddedToken a{t.at("content").get<std::string>(),
                 "",
                 t.at("id").get<int32_t>(),
                 t.value("special", false),
                 t.value("normalized", !t.value("special", false)),
                 t.value("lstrip", false),
                 t.value("rstrip", false),
                 t.value("single_word", false)};
    if (a.content.empty()) continue;
    if (token_of_id_.size() <= static_cast<size_t>(a.id)) {
      token_of_id_.resize(a.id + 1);
      bytes_of_id_.resize(a.id + 1);
    }
    // A normalized token is matched on normalized text by its normalized content, which is also
    // what HF decodes it to; token_to_id still takes the content as written.
    a.match = a.content;
    if (a.normalized) normalizer_->normalize(a.match);
    token_of_id_[a.id] = a.match;
    id_of_token_[a.content] = a.id;
    std::string bytes;
    bytes_of_id_[a.id] = unmap_byte_level(a.match, &bytes) ? bytes : a.match;
    if (!a.match.empty()) {
      added_by_first_byte_[static_cast<unsigned char>(a.match[0])].push_back(added_.size());
      (a.normalized ? has_normalized_added_ : has_raw_added_) = true;
    }
    added_.push_back(std::move(a));
  }
  // HF skips an id in decoding when its string is a special token's content. A normalized
  // special token decodes to its normalized content (Llama 2 files with "normalized": true
  // give "▁<s>"), which is then not skipped.
  std::unordered_set<std::string> special_content;
  for (const auto& a : added_)
    if (a.special) special_content.insert(a.content);
  special_id_.assign(token_of_id_.size(), false);
  for (size_t id = 0; id < token_of_id_.size(); ++id)
    special_id_[id] = special_content.count(token_of_id_[id]) > 0;
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
        if (!st.contains(name))
          fail("{}: template names undefined special token '{}'", file_, name);
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
    fail(
        "{}: post_processor type '{}' is not supported (supported: TemplateProcessing, "
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
    const std::string dir = config_json.substr(0, config_json.find_last_of('/') + 1);
    std::string map_path = join_path(dir, "special_tokens_map.json");
    if (path_exists(map_path)) special_map_text_ = read_file(map_path);
    // transformers 5 keeps chat templates in files beside the config: carried through save().
    if (path_exists(join_path(dir, "chat_template.jinja")))
      template_files_["chat_template.jinja"] = read_file(join_path(dir, "chat_template.jinja"));
    const std::string extra = join_path(dir, "additional_chat_templates");
    if (is_directory(extra))
      for (const auto& f : list_dir(extra))
        if (ends_with(f, ".jinja"))
          template_files_["additional_chat_templates/" + f] = read_file(join_path(extra, f));
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

std::string HfTokenizer::token_text(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= token_of_id_.size()) return "";
  // Byte level and added tokens: the bytes are known exactly.
  if (byte_level_ || !bytes_of_id_[id].empty()) return bytes_of_id_[id];
  const std::string& t = token_of_id_[id];
  if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
    try {
      return std::string(1, static_cast<char>(std::stoi(t.substr(3, 2), nullptr, 16)));
    } catch (const std::exception&) {
    }
  }
  std::string out;
  for (size_t i = 0; i < t.size(); ++i) {
    if (t.compare(i, 3, "\xe2\x96\x81") == 0) {  // "▁", SentencePiece's space
      out += ' ';
      i += 2;
    } else {
      out += t[i];
    }
  }
  return out;
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
      if (text.compare(i, a.match.size(), a.match) != 0) continue;
      if (!best || a.match.size() > best->match.size()) best = &a;
    }
    if (best) {
      *begin = i;
      *end = i + best->match.size();
      return best;
    }
  }
  return nullptr;
}

void HfTokenizer::split_on_added(std::string_view text, bool normalized_pass, bool at_start,
                                 bool parse_special, std::vector<int32_t>& out) const {
  // `gap_start`: where the gap begins in `text` (HF: only a gap at original offset 0 is first).
  auto flush = [&](std::string_view gap, size_t gap_start) {
    if (gap.empty()) return;
    bool first = at_start && gap_start == 0;
    if (normalized_pass) {
      encode_plain(gap, first, out);
    } else if (normalizer_->empty()) {
      split_on_added(gap, true, first, parse_special, out);
    } else {
      std::string normalized(gap);
      normalizer_->normalize(normalized);
      if (!normalized.empty()) split_on_added(normalized, true, first, parse_special, out);
    }
  };
  auto is_word_byte = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80);
  };
  if (!(normalized_pass ? has_normalized_added_ : has_raw_added_)) {
    flush(text, 0);
    return;
  }
  size_t start_offset = 0, pos = 0, b = 0, e = 0;
  while (const AddedToken* a = match_added(text, pos, normalized_pass, &b, &e)) {
    pos = e;
    if (a->special && !parse_special) continue;
    if (a->single_word &&
        ((b > 0 && is_word_byte(text[b - 1])) || (e < text.size() && is_word_byte(text[e]))))
      continue;
    size_t start = b, stop = e;
    if (a->lstrip) {
      // Step back over whitespace characters, not past the previous split.
      size_t s = start;
      while (s > start_offset) {
        size_t c = s - 1;
        while (c > start_offset && (static_cast<unsigned char>(text[c]) & 0xC0) == 0x80) --c;
        size_t j = c;
        if (!is_white_space(next_code_point(text, j))) break;
        s = c;
      }
      start = s;
    }
    if (a->rstrip) {
      while (stop < text.size()) {
        size_t j = stop;
        if (!is_white_space(next_code_point(text, j))) break;
        stop = j;
      }
      pos = stop;
    }
    flush(text.substr(start_offset, start - start_offset), start_offset);
    out.push_back(a->id);
    start_offset = stop;
  }
  flush(text.substr(start_offset), start_offset);
}

void HfTokenizer::encode_plain(std::string_view text, bool at_start,
                               std::vector<int32_t>& out) const {
  thread_local std::vector<std::string> words;
  words.clear();
  pre_->split(text, words, at_start);
  for (const auto& w : words) bpe_.encode_word(w, out);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text, const EncodeOptions& opts) const {
  std::vector<int32_t> body;
  body.reserve(text.size() / 3 + 4);
  split_on_added(text, false, true, opts.parse_special, body);
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
  if (byte_level_ && decoder_->byte_level_only())
    return decode_id_bytes(bytes_of_id_, special_id_, ids, keep_special, file_);
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= token_of_id_.size())
      fail("{}: cannot decode id {} (vocabulary size {})", file_, id, token_of_id_.size());
    if (!keep_special && special_id_[static_cast<size_t>(id)]) continue;
    tokens.push_back(token_of_id_[static_cast<size_t>(id)]);
  }
  return decoder_->decode(std::move(tokens));
}

void HfTokenizer::save(const std::string& dir) const {
  make_dirs(dir);
  write_file_atomic(join_path(dir, "tokenizer.json"), json_text_);
  if (!config_text_.empty())
    write_file_atomic(join_path(dir, "tokenizer_config.json"), config_text_);
  if (!special_map_text_.empty())
    write_file_atomic(join_path(dir, "special_tokens_map.json"), special_map_text_);
  for (const auto& [name, text] : template_files_) {
    if (name.find('/') != std::string::npos)
      make_dirs(join_path(dir, name.substr(0, name.find('/'))));
    write_file_atomic(join_path(dir, name), text);
  }
}

std::vector<int32_t> encode_like_transformers(const Tokenizer& tokenizer, const std::string& text,
                                              bool add_special_tokens) {
  if (auto* hf = dynamic_cast<const HfTokenizer*>(&tokenizer))
    return hf->encode(text, EncodeOptions{add_special_tokens, true});
  std::vector<int32_t> ids;
  if (add_special_tokens && tokenizer.bos_id() >= 0) ids.push_back(tokenizer.bos_id());
  auto rest = tokenizer.encode(text);
  ids.insert(ids.end(), rest.begin(), rest.end());
  return ids;
}

std::vector<int32_t> encode_prompt(const Tokenizer& tokenizer, const std::string& text) {
  if (auto* hf = dynamic_cast<const HfTokenizer*>(&tokenizer))
    return hf->encode(text, EncodeOptions{true, true});
  return tokenizer.encode(text);
}

}  // namespace reef
