// The family registry, the model rules every family shares, and the catalog installed into
// config/ (see family.h). Adding a family: a folder models/<name>/ defining <name>_family(),
// and one line in the registration below.
#include "reef/models/family.h"

#include "reef/base/error.h"
#include "reef/base/strings.h"

namespace reef {

// ---- registration: one line per family ----
const ModelFamily& llama_family();  // models/llama/
const ModelFamily& gpt2_family();   // models/gpt2/

const std::vector<const ModelFamily*>& model_families() {
  static const std::vector<const ModelFamily*> all = {&llama_family(), &gpt2_family()};
  return all;
}

const ModelFamily* find_model_family(const std::string& arch) {
  for (const ModelFamily* f : model_families())
    for (const auto& a : f->archs)
      if (a == arch) return f;
  return nullptr;
}

const ModelFamily& model_family(const std::string& arch) {
  const ModelFamily* f = find_model_family(arch);
  if (f == nullptr)
    usage_error("model.arch '{}' is not supported; supported: {}", arch, supported_archs_list());
  return *f;
}

const std::vector<std::string>& supported_archs() {
  static const std::vector<std::string> archs = [] {
    std::vector<std::string> out;
    for (const ModelFamily* f : model_families())
      out.insert(out.end(), f->archs.begin(), f->archs.end());
    return out;
  }();
  return archs;
}

std::string sequence_classifier_class(const std::string& arch) {
  std::string name = model_family(arch).hf_classes(arch).front();
  for (const std::string suffix : {std::string("ForCausalLM"), std::string("LMHeadModel")})
    if (name.size() > suffix.size() && ends_with(name, suffix))
      return name.substr(0, name.size() - suffix.size()) + "ForSequenceClassification";
  fail("no sequence-classifier class for arch {} (internal error)", arch);
}

std::string supported_archs_list() {
  std::string out;
  for (const auto& a : supported_archs()) out += (out.empty() ? "" : ", ") + a;
  return out;
}

bool is_llama_family(const std::string& arch) {
  const ModelFamily* f = find_model_family(arch);
  return f != nullptr && f->name == "llama";
}

namespace {

std::vector<std::string> split_dots(const std::string& s) {
  std::vector<std::string> out(1);
  for (char ch : s) {
    if (ch == '.')
      out.emplace_back();
    else
      out.back() += ch;
  }
  return out;
}

}  // namespace

std::optional<TpStyle> tp_style(const std::vector<TpRule>& plan, const std::string& module_name) {
  const auto name = split_dots(module_name);
  for (const TpRule& rule : plan) {
    const auto pattern = split_dots(rule.pattern);
    if (pattern.size() != name.size()) continue;
    bool match = true;
    for (size_t i = 0; i < name.size() && match; ++i)
      match = pattern[i] == "*" || pattern[i] == name[i];
    if (match) return rule.style;
  }
  return std::nullopt;
}

void check_model_rules(const ModelConfig& m, const ConfigChecker& c) {
  c.one_of("model.arch", m.arch, supported_archs());
  if (m.head_dim == 0 && m.hidden_size % m.n_heads != 0) {
    c.fail("model.hidden_size",
           fmt::format("a multiple of model.n_heads when model.head_dim is 0 ({})",
                       c.ref("model.n_heads", std::to_string(m.n_heads))),
           std::to_string(m.hidden_size));
  }
  if (m.n_kv_heads > 0 && m.n_heads % m.n_kv_heads != 0) {
    c.fail("model.n_kv_heads",
           fmt::format("a divisor of model.n_heads ({})",
                       c.ref("model.n_heads", std::to_string(m.n_heads))),
           std::to_string(m.n_kv_heads));
  }
  const ModelFamily& family = model_family(m.arch);
  const ModelConfig d = derive_model_config(m);
  if (family.uses_rope && d.head_dim % 2 != 0) {
    if (m.head_dim > 0) {
      c.fail("model.head_dim", fmt::format("an even width for rotary embeddings (arch {})", m.arch),
             std::to_string(m.head_dim));
    }
    c.fail("model.hidden_size",
           fmt::format("hidden_size / n_heads to be even for rotary embeddings ({}), or an even "
                       "model.head_dim",
                       c.ref("model.n_heads", std::to_string(m.n_heads))),
           std::to_string(m.hidden_size), fmt::format("; that is a head width of {}", d.head_dim));
  }
  // ""/"default" are transformers' spellings of no scaling; "" of auto.
  if (!m.rope_scaling.empty() && m.rope_scaling != "default")
    c.one_of("model.rope_scaling", m.rope_scaling, {"none", "linear", "llama3"});
  if (family.uses_rope) c.positive("model.rope_theta", m.rope_theta);
  family.check(m, c);  // before the factors: gpt2 refuses any rope_scaling
  if (d.rope_scaling != "none") c.positive("model.rope_factor", m.rope_factor);
  if (d.rope_scaling == "llama3") {
    c.positive("model.rope_low_freq_factor", m.rope_low_freq_factor);
    if (!(m.rope_high_freq_factor > m.rope_low_freq_factor)) {
      c.fail("model.rope_high_freq_factor",
             fmt::format(
                 "a value > model.rope_low_freq_factor ({})",
                 c.ref("model.rope_low_freq_factor", fmt::format("{}", m.rope_low_freq_factor))),
             fmt::format("{}", m.rope_high_freq_factor));
    }
    c.at_least("model.rope_original_max_seq_len", m.rope_original_max_seq_len, int64_t{1});
  }
  // The activations nn/ implements; auto is the arch's own.
  if (!m.activation.empty())
    c.one_of("model.activation", m.activation,
             {"auto", "silu", "gelu", "gelu_new", "gelu_pytorch_tanh", "relu"});
}

ModelConfig derive_model_config(const ModelConfig& m) {
  ModelConfig d = m;
  const ModelFamily* f = find_model_family(m.arch);
  if (f != nullptr) f->derive(d);
  return d;
}

ModelConfig resolve_model_config(const ModelConfig& cfg) {
  const ConfigChecker c;  // no origins: a config built in code
  check_model_ranges(cfg, c);
  check_model_rules(cfg, c);
  return derive_model_config(cfg);
}

void install_model_families() {
  static const ModelCatalog catalog = [] {
    ModelCatalog k;
    k.archs = supported_archs();
    for (const ModelFamily* f : model_families())
      for (auto& [name, keys] : f->presets()) k.presets[name] = keys;
    k.check = check_model_rules;
    k.derive = derive_model_config;
    k.uses_rope = [](const ModelConfig& m) {
      const ModelFamily* f = find_model_family(m.arch);
      return f == nullptr || f->uses_rope;
    };
    return k;
  }();
  set_model_catalog(&catalog);
}

}  // namespace reef
