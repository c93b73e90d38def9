// Typed reading of a Hugging Face config.json with one-line errors that name the file and the
// key, and the config.json pieces several families share (RoPE, activations). Used by
// hf_config.cpp and each family's mapping (models/<family>/*_hf.cpp).
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "reef/base/error.h"
#include "reef/config/config.h"

namespace reef {

// Typed access to config.json fields with errors that name the file and the key.
class HfReader {
 public:
  HfReader(const nlohmann::json& j, const std::string& where) : j_(j), where_(where) {}

  bool has(const char* key) const { return j_.contains(key) && !j_.at(key).is_null(); }
  const nlohmann::json& at(const char* key) const { return j_.at(key); }

  int64_t integer(const char* key) const {
    if (!has(key)) usage_error("{}: missing required field '{}'", where_, key);
    return integer_value(j_.at(key), key);
  }
  int64_t integer(const char* key, int64_t fallback) const {
    return has(key) ? integer_value(j_.at(key), key) : fallback;
  }
  double number(const char* key, double fallback) const {
    if (!has(key)) return fallback;
    return number_value(j_.at(key), key);
  }
  bool boolean(const char* key, bool fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_boolean()) usage_error("{}: field '{}' must be true or false", where_, key);
    return j_.at(key).get<bool>();
  }
  std::string string(const char* key, const std::string& fallback) const {
    if (!has(key)) return fallback;
    if (!j_.at(key).is_string()) usage_error("{}: field '{}' must be a string", where_, key);
    return j_.at(key).get<std::string>();
  }
  int64_t integer_value(const nlohmann::json& v, const std::string& key) const {
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float() &&
        v.get<double>() == static_cast<double>(static_cast<int64_t>(v.get<double>()))) {
      return static_cast<int64_t>(v.get<double>());
    }
    usage_error("{}: field '{}' must be an integer, got {}", where_, key, v.dump());
  }
  double number_value(const nlohmann::json& v, const std::string& key) const {
    if (!v.is_number())
      usage_error("{}: field '{}' must be a number, got {}", where_, key, v.dump());
    return v.get<double>();
  }
  const std::string& where() const { return where_; }

 private:
  const nlohmann::json& j_;
  const std::string& where_;
};

// RoPE from either rope_parameters (transformers 5) or rope_theta + rope_scaling (classic) into
// c.rope_*; default_theta when config.json has none.
void read_rope(const HfReader& r, ModelConfig& c, double default_theta);
// The classic rope_scaling object for c (null for none).
nlohmann::json rope_scaling_json(const ModelConfig& c);
// Refuses an activation nn/ does not implement, naming config.json's key.
void check_activation(const HfReader& r, const char* key, const std::string& act);

}  // namespace reef
