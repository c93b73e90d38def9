// Reading a whole JSON file (config.json, an index, tokenizer_config.json, ...) with the one error
// every caller wants for a malformed one: the path and what the parser found.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace reef {

// Parses `path`; throws reef::Error (failed work, exit 1) naming the file when it is not valid
// JSON, and as read_file does when it cannot be read.
nlohmann::json read_json_file(const std::string& path);

}  // namespace reef
