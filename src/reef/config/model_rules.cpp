// ConfigChecker, the generic model range checks and the installed ModelCatalog (see
// model_rules.h).
#include "reef/config/model_rules.h"

#include "reef/base/error.h"
#include "reef/config/fields.h"

namespace reef {

namespace {

std::string join(const std::vector<std::string>& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) out += (i ? ", " : "") + v[i];
  return out;
}

const ModelCatalog* g_catalog = nullptr;

}  // namespace

std::string ConfigChecker::from(const std::string& key) const {
  if (origin_ == nullptr) return "";
  auto it = origin_->find(key);
  return it == origin_->end() ? "default" : it->second;
}

void ConfigChecker::fail(const std::string& key, const std::string& what, const std::string& got,
                         const std::string& tail) const {
  if (origin_ == nullptr) usage_error("{}: expected {}, got {}{}", key, what, got, tail);
  usage_error("{}: expected {}, got {} ({}){}", key, what, got, from(key), tail);
}

std::string ConfigChecker::ref(const std::string& key, const std::string& value) const {
  if (origin_ == nullptr) return fmt::format("{} = {}", key, value);
  return fmt::format("{} = {} from {}", key, value, from(key));
}

void ConfigChecker::at_least(const std::string& key, int64_t v, int64_t lo) const {
  if (!(v >= lo)) fail(key, fmt::format("a value >= {}", lo), fmt::format("{}", v));
}

void ConfigChecker::at_least(const std::string& key, double v, double lo) const {
  if (!(v >= lo)) fail(key, fmt::format("a value >= {}", lo), fmt::format("{}", v));
}

void ConfigChecker::positive(const std::string& key, double v) const {
  if (!(v > 0)) fail(key, "a number > 0", fmt::format("{}", v));
}

void ConfigChecker::in_unit_interval(const std::string& key, double v) const {
  if (!(v >= 0 && v < 1)) fail(key, "a number in [0, 1)", fmt::format("{}", v));
}

void ConfigChecker::one_of(const std::string& key, const std::string& v,
                           const std::vector<std::string>& allowed) const {
  for (const auto& a : allowed)
    if (v == a) return;
  std::string guess = config_detail::did_you_mean(v, allowed);
  fail(key, "one of " + join(allowed), "'" + v + "'",
       guess.empty() ? "" : fmt::format("; did you mean '{}'?", guess));
}

void check_model_ranges(const ModelConfig& m, const ConfigChecker& c) {
  c.at_least("model.vocab_size", m.vocab_size, int64_t{0});
  c.at_least("model.hidden_size", m.hidden_size, int64_t{1});
  c.at_least("model.intermediate_size", m.intermediate_size, int64_t{0});
  c.at_least("model.n_layers", m.n_layers, int64_t{1});
  c.at_least("model.n_heads", m.n_heads, int64_t{1});
  c.at_least("model.n_kv_heads", m.n_kv_heads, int64_t{0});
  c.at_least("model.head_dim", m.head_dim, int64_t{0});
  c.at_least("model.max_seq_len", m.max_seq_len, int64_t{1});
  c.positive("model.norm_eps", m.norm_eps);
  c.positive("model.init_std", m.init_std);
  c.at_least("model.n_experts", m.n_experts, int64_t{0});
  c.at_least("model.router_aux_loss_coef", m.router_aux_loss_coef, 0.0);
}

void set_model_catalog(const ModelCatalog* catalog) { g_catalog = catalog; }

const ModelCatalog& model_catalog() {
  if (g_catalog == nullptr)
    fail(
        "internal: no model families installed; link reef_models and call "
        "install_model_families() (models/registry.h) before loading a config");
  return *g_catalog;
}

const std::map<std::string, std::map<std::string, std::string>>& model_presets() {
  return model_catalog().presets;
}

}  // namespace reef
