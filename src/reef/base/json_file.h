// Reading a whole JSON file (config.json, an index, tokenizer_config.json, ...) with the one error
// every caller wants for a malformed one: the path and what the parser found; and JSONL files
// (SFT rows, conversations, preference pairs) one record at a time, each named "path:line".
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

namespace reef {

// Parses `path`; throws reef::Error (failed work, exit 1) naming the file when it is not valid
// JSON, and as read_file does when it cannot be read.
nlohmann::json read_json_file(const std::string& path);

// Calls `fn(record, source)` for each non-blank line of the JSONL file `path` in order, the
// record parsed with its keys in file order and `source` "path:line"; stops when fn returns
// false. A line that is not JSON is a usage error naming its source, or, when `on_malformed` is
// given, skipped after calling it with that error's message.
void for_each_jsonl_record(
    const std::string& path,
    const std::function<bool(nlohmann::ordered_json record, const std::string& source)>& fn,
    const std::function<void(const std::string& message)>& on_malformed = nullptr);

}  // namespace reef
