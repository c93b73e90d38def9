// Implementation of base/json_file.h.
#include "reef/base/json_file.h"

#include <sstream>

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

void for_each_jsonl_record(
    const std::string& path,
    const std::function<bool(nlohmann::ordered_json record, const std::string& source)>& fn,
    const std::function<void(const std::string& message)>& on_malformed) {
  std::istringstream in(read_file(path));
  int64_t line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string source = path + ":" + std::to_string(line_no);
    nlohmann::ordered_json record;
    try {
      record = nlohmann::ordered_json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      const std::string message = fmt::format("{}: not valid JSON: {}", source, e.what());
      if (!on_malformed) usage_error("{}", message);
      on_malformed(message);
      continue;
    }
    if (!fn(std::move(record), source)) return;
  }
}

}  // namespace reef
