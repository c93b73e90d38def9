// The gpt2 family's pieces shared between its files (gpt2_family.cpp registers them): presets
// and the HF config.json mapping (gpt2_hf.cpp).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "reef/models/family.h"
#include "reef/models/hf_reader.h"

namespace reef {

std::map<std::string, PresetKeys> gpt2_presets();
std::vector<std::string> gpt2_hf_classes(const std::string& arch);
void gpt2_to_hf(const ModelConfig& c, nlohmann::json& j);
ModelConfig gpt2_from_hf(const HfReader& r, const std::string& arch);
std::string gpt2_hf_parameter_name_of(const ModelConfig& c, const std::string& tensor_name);

}  // namespace reef
