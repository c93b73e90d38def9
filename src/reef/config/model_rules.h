// The seam through which models/ supplies what config/ must know about architectures without
// including models/ (which sits below config/ in the layer order): ConfigChecker, the one way a
// config rule reports a bad value (key, expectation, value and where it came from), and the
// ModelCatalog that models/ installs at start (install_model_families() in models/registry.h):
// the arch list, the presets and the family rules that validate_config runs. The family rules
// themselves live once, in models/<family>/, and resolve_model_config runs the same ones.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "reef/config/config.h"

namespace reef {

// Reports a config rule's failure as one usage error line:
//   "<key>: expected <what>, got <got> (<origin>)<tail>"
// With no origins (a config built in code, e.g. resolve_model_config) the "(<origin>)" part is
// left out, as nothing is known about where the value came from.
class ConfigChecker {
 public:
  ConfigChecker() = default;  // no origins
  explicit ConfigChecker(const std::map<std::string, std::string>& origin) : origin_(&origin) {}

  // Where `key`'s value came from ("x.yaml:3", "command line", "default"); "" without origins.
  std::string from(const std::string& key) const;
  [[noreturn]] void fail(const std::string& key, const std::string& what, const std::string& got,
                         const std::string& tail = "") const;
  // The other key of a cross-field check: "model.n_heads = 4 from preset llama-tiny"
  // ("model.n_heads = 4" without origins).
  std::string ref(const std::string& key, const std::string& value) const;

  void at_least(const std::string& key, int64_t v, int64_t lo) const;
  void at_least(const std::string& key, double v, double lo) const;
  void positive(const std::string& key, double v) const;
  void in_unit_interval(const std::string& key, double v) const;
  // With a did-you-mean for a near miss.
  void one_of(const std::string& key, const std::string& v,
              const std::vector<std::string>& allowed) const;

 private:
  const std::map<std::string, std::string>* origin_ = nullptr;
};

// The generic range checks of model.* (sizes >= their minimum, positive epsilons): no arch
// knowledge. The family rules run after them, so they may divide by n_heads.
void check_model_ranges(const ModelConfig& m, const ConfigChecker& c);

// What models/ tells config/ about the architectures it builds.
struct ModelCatalog {
  std::vector<std::string> archs;  // every model.arch, in the order messages list them
  std::map<std::string, std::map<std::string, std::string>> presets;  // name -> dotted keys
  // The family rules of m.arch (an unknown arch included), after check_model_ranges.
  std::function<void(const ModelConfig&, const ConfigChecker&)> check;
  // m with the derived fields filled in (never throws; values may be meaningless for a config
  // the rules refuse).
  std::function<ModelConfig(const ModelConfig&)> derive;
  std::function<bool(const ModelConfig&)> uses_rope;
};

// Installed once by models/ (install_model_families()); the catalog must outlive the program.
void set_model_catalog(const ModelCatalog* catalog);
// The installed catalog; an internal error when none is (a binary that loads configs must link
// reef_models and call install_model_families() first).
const ModelCatalog& model_catalog();

}  // namespace reef
