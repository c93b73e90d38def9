// Implementation of data/fortunes.h.
#include "reef/data/fortunes.h"

#include <nlohmann/json.hpp>
#include <unordered_set>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"
#include "reef/base/strings.h"
#include "reef/data/documents.h"
#include "reef/tokenizer/regex.h"

namespace reef {
namespace {

// Keeps valid UTF-8 as is and replaces each invalid byte with U+FFFD, so the corpus is clean JSON.
std::string sanitize_utf8(std::string_view s) {
  std::string out;
  while (!s.empty()) {
    size_t ok = valid_utf8_prefix(s);
    out.append(s.substr(0, ok));
    s.remove_prefix(ok);
    if (s.empty()) break;
    size_t bad = invalid_utf8_run(s);
    for (size_t k = 0; k < bad; ++k) out += "\xEF\xBF\xBD";
    s.remove_prefix(bad);
  }
  return out;
}

}  // namespace

FortunesCorpus build_fortunes_corpus(const std::string& src_dir, const std::string& out_dir,
                                     double valid_fraction) {
  if (!is_directory(src_dir))
    usage_error("fortunes not found at {} (install Debian's 'fortunes' package)", src_dir);
  std::vector<std::string> docs;
  std::unordered_set<uint64_t> seen;
  FortunesCorpus c;
  for (const auto& name : list_dir(src_dir)) {
    std::string path = join_path(src_dir, name);
    if (is_directory(path) || ends_with(name, ".dat") || ends_with(name, ".u8")) continue;
    std::string content = read_file(path);
    std::string cur;
    size_t pos = 0;
    auto flush = [&] {
      while (!cur.empty() && (cur.back() == '\n' || cur.back() == ' ')) cur.pop_back();
      if (!cur.empty()) {
        std::string doc = sanitize_utf8(cur);
        if (seen.insert(xxh64(doc)).second)
          docs.push_back(std::move(doc));
        else
          ++c.n_duplicates;
      }
      cur.clear();
    };
    while (pos < content.size()) {
      size_t nl = content.find('\n', pos);
      if (nl == std::string::npos) nl = content.size();
      std::string line = content.substr(pos, nl - pos);
      pos = nl + 1;
      if (line == "%")
        flush();
      else
        cur += line + "\n";
    }
    flush();
  }
  if (docs.empty()) usage_error("no fortunes found in {}", src_dir);
  std::vector<std::string> train, valid;
  split_documents(std::move(docs), valid_fraction, &train, &valid);
  make_dirs(out_dir);
  auto write = [](const std::string& path, const std::vector<std::string>& d) {
    AtomicFileWriter w(path);
    for (const auto& doc : d) {
      w.write(nlohmann::json{{"text", doc}}.dump());
      w.write("\n");
    }
    int64_t bytes = static_cast<int64_t>(w.bytes_written());
    w.commit();
    return bytes;
  };
  c.train_path = join_path(out_dir, "train.jsonl");
  c.valid_path = join_path(out_dir, "valid.jsonl");
  c.train_bytes = write(c.train_path, train);
  c.valid_bytes = write(c.valid_path, valid);
  c.n_train = static_cast<int64_t>(train.size());
  c.n_valid = static_cast<int64_t>(valid.size());
  return c;
}

}  // namespace reef
