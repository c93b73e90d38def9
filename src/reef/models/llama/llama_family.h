// The llama family's pieces shared between its files (llama_family.cpp registers them):
// presets (llama_presets.cpp) and the HF config.json mapping (llama_hf.cpp).
#pragma once

#include <map>
#include <string>
#include <vector>

#include "reef/models/family.h"
#include "reef/models/hf_reader.h"

namespace reef {

std::map<std::string, PresetKeys> llama_presets();
std::vector<std::string> llama_hf_classes(const std::string& arch);
void llama_to_hf(const ModelConfig& c, nlohmann::json& j);
ModelConfig llama_from_hf(const HfReader& r, const std::string& arch);
std::string llama_hf_parameter_name(const ModelConfig& c, const std::string& tensor_name);

}  // namespace reef
