// Tests for base/json_file.h's JSONL reader: records in file order with their keys in file
// order, blank lines skipped, each named path:line, an early stop, and a bad line a usage error
// naming where it is.
#include "reef/base/json_file.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(Jsonl, RecordsInOrderNamedByLineUntilTheCallerStops) {
  testing::ScratchDir dir;
  const std::string path = dir / "rows.jsonl";
  write_file_atomic(path, "{\"z\": 1, \"a\": 2}\n\n   \n[3, 4]\n{\"x\": \"y\"}\n{\"last\": 0}\n");
  std::vector<std::string> seen;
  for_each_jsonl_record(path, [&](nlohmann::ordered_json r, const std::string& source) {
    seen.push_back(source + " " + r.dump());
    return seen.size() < 3;
  });
  EXPECT_EQ(seen, (std::vector<std::string>{path + ":1 {\"z\":1,\"a\":2}", path + ":4 [3,4]",
                                            path + ":5 {\"x\":\"y\"}"}));
}

TEST(Jsonl, ABadLineIsAUsageErrorNamingFileAndLine) {
  testing::ScratchDir dir;
  const std::string path = dir / "bad.jsonl";
  write_file_atomic(path, "{\"ok\": 1}\n{\"broken\": \n");
  int calls = 0;
  try {
    for_each_jsonl_record(path, [&](nlohmann::ordered_json, const std::string&) {
      ++calls;
      return true;
    });
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find(path + ":2: not valid JSON"), std::string::npos)
        << e.what();
  }
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace reef
