// Tests for base/files.h: atomic writes leave either the old or the new content, never a temp.
#include "reef/base/files.h"

#include <gtest/gtest.h>

#include <sstream>

#include "reef/base/error.h"
#include "reef/base/hash.h"
#include "reef/base/json_file.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(Files, AtomicWriteReplacesContentAndLeavesNoTemp) {
  testing::ScratchDir dir;
  std::string p = dir / "a.txt";
  write_file_atomic(p, "first");
  write_file_atomic(p, "second");
  EXPECT_EQ(read_file(p), "second");
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"a.txt"});
}

TEST(Files, AbandonedWriterRemovesTempAndKeepsOld) {
  testing::ScratchDir dir;
  std::string p = dir / "a.txt";
  write_file_atomic(p, "old");
  {
    AtomicFileWriter w(p);
    w.write("partial");
  }
  EXPECT_EQ(read_file(p), "old");
  EXPECT_EQ(list_dir(dir.path()).size(), 1u);
}

TEST(Files, MappedFileSeesBytes) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "b", "hello");
  auto m = MappedFile::open(dir / "b");
  ASSERT_EQ(m->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), 5), "hello");
}

TEST(Files, MissingFileErrorNamesPath) {
  try {
    read_file("/nonexistent/reef/x");
    FAIL() << "no throw";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/reef/x"), std::string::npos);
  }
}

// Resident pages of this process (/proc/self/statm, second field).
long resident_pages() {
  std::istringstream in(read_file("/proc/self/statm"));
  long size = 0, resident = 0;
  in >> size >> resident;
  return resident;
}

TEST(Files, ReleasedMappedPagesLeaveRssAndReadBackUnchanged) {
  testing::ScratchDir dir;
  std::string data(64 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 2654435761u) >> 13);
  write_file_atomic(dir / "big", data);
  const uint64_t want = xxh64(data);
  data.clear();
  data.shrink_to_fit();
  auto m = MappedFile::open(dir / "big");
  const long before = resident_pages();
  EXPECT_EQ(xxh64(m->data(), m->size()), want);  // touches every page
  const long touched = resident_pages();
  EXPECT_GT(touched - before, 12000);  // 64 MiB is 16384 pages of 4 KiB
  release_mapped_pages(m->data(), m->size());
  EXPECT_LT(resident_pages() - before, (touched - before) / 4);
  // The content is the file's, read again on demand.
  EXPECT_EQ(xxh64(m->data(), m->size()), want);
  // The chunked, releasing hash is the same hash, and leaves little resident.
  release_mapped_pages(m->data(), m->size());
  const long base = resident_pages();
  EXPECT_EQ(xxh64_mapped(m->data(), m->size()), want);
  EXPECT_LT(resident_pages() - base, 8000);
}

TEST(Hash, Xxh64KnownValue) {
  // XXH64 of the empty input with seed 0 is a published constant of the algorithm.
  EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_NE(xxh64("a"), xxh64("b"));
}

}  // namespace
}  // namespace reef

namespace reef {
namespace {

TEST(JsonFile, ParsesOrNamesTheFile) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "ok.json", R"({"a": [1, 2]})");
  EXPECT_EQ(read_json_file(dir / "ok.json")["a"][1], 2);
  write_file_atomic(dir / "bad.json", R"({"a": )");
  try {
    read_json_file(dir / "bad.json");
    FAIL() << "malformed JSON accepted";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kRuntime);
    EXPECT_NE(std::string(e.what()).find(dir / "bad.json: malformed JSON"), std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_json_file(dir / "missing.json"), Error);
}

}  // namespace
}  // namespace reef
