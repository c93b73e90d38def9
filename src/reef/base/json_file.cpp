// Implementation of base/json_file.h.
#include "reef/base/json_file.h"

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef {

nlohmann::json read_json_file(const std::string& path) {
  const std::string text = read_file(path);
  try {
    return nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    fail("{}: malformed JSON: {}", path, e.what());
  }
}

}  // namespace reef
