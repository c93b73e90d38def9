// Tests for base/files.h: atomic writes leave either the old or the new content, never a temp.
#include "reef/base/files.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/hash.h"
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

TEST(Hash, Xxh64KnownValue) {
  // XXH64 of the empty input with seed 0 is a published constant of the algorithm.
  EXPECT_EQ(xxh64("", 0), 0xEF46DB3751D8E999ULL);
  EXPECT_NE(xxh64("a"), xxh64("b"));
}

}  // namespace
}  // namespace reef
