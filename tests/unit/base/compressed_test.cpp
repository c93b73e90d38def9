// Tests for base/compressed.h: gzip and zstd files (made by tests/testing with zlib's deflate
// and libzstd's compressor, independent of the reader) read back byte-exact in small and large
// reads, concatenated members / frames read as one stream, and truncated or corrupt files fail
// naming the file.
#include "reef/base/compressed.h"

#include <gtest/gtest.h>

#include <random>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::string sample_text(size_t n) {
  std::mt19937 rng(5);
  const char* words[] = {"alpha ", "beta ", "gamma\n", "déjà ", "😀 ", "{\"text\": 1}\n"};
  std::string s;
  while (s.size() < n) s += words[rng() % 6];
  return s;
}

std::string read_in_chunks(const std::string& path, size_t chunk) {
  DecompressingReader r(path);
  std::string out, buf(chunk, '\0');
  for (size_t got; (got = r.read(buf.data(), chunk)) > 0;) out.append(buf.data(), got);
  return out;
}

TEST(Compressed, GzipAndZstdReadBackExactly) {
  testing::ScratchDir dir;
  const std::string text = sample_text(3'000'000);
  write_file_atomic(dir / "a.jsonl", text);
  write_file_atomic(dir / "a.jsonl.gz", testing::gzip_bytes(text));
  write_file_atomic(dir / "a.jsonl.zst", testing::zstd_bytes(text));
  write_file_atomic(dir / "misnamed.txt",
                    testing::zstd_bytes(text));  // recognised by content, not name
  EXPECT_EQ(detect_compression(dir / "a.jsonl"), Compression::kNone);
  EXPECT_EQ(detect_compression(dir / "a.jsonl.gz"), Compression::kGzip);
  EXPECT_EQ(detect_compression(dir / "a.jsonl.zst"), Compression::kZstd);
  EXPECT_EQ(detect_compression(dir / "misnamed.txt"), Compression::kZstd);
  for (const char* name : {"a.jsonl", "a.jsonl.gz", "a.jsonl.zst", "misnamed.txt"}) {
    EXPECT_EQ(read_file_decompressed(dir / name), text) << name;
    EXPECT_EQ(read_in_chunks(dir / name, 7), text) << name;
  }
  DecompressingReader r(dir / "a.jsonl.gz");
  std::string buf(1000, '\0');
  while (r.read(buf.data(), buf.size()) > 0) {
  }
  EXPECT_EQ(r.file_position(), static_cast<int64_t>(testing::gzip_bytes(text).size()));
  EXPECT_EQ(strip_compression_suffix("x/a.jsonl.gz"), "x/a.jsonl");
  EXPECT_EQ(strip_compression_suffix("a.jsonl.zst"), "a.jsonl");
  EXPECT_EQ(strip_compression_suffix("a.txt"), "a.txt");
}

TEST(Compressed, ConcatenatedMembersAndFramesAreOneStream) {
  testing::ScratchDir dir;
  const std::string a = sample_text(100'000), b = "second part\n" + sample_text(5000);
  write_file_atomic(dir / "two.gz", testing::gzip_bytes(a) + testing::gzip_bytes(b));
  write_file_atomic(dir / "two.zst", testing::zstd_bytes(a) + testing::zstd_bytes(b));
  EXPECT_EQ(read_file_decompressed(dir / "two.gz"), a + b);
  EXPECT_EQ(read_file_decompressed(dir / "two.zst"), a + b);
}

TEST(Compressed, TruncatedOrCorruptFilesFailNamingTheFile) {
  testing::ScratchDir dir;
  const std::string text = sample_text(200'000);
  const std::string gz = testing::gzip_bytes(text), zs = testing::zstd_bytes(text);
  write_file_atomic(dir / "cut.gz", gz.substr(0, gz.size() / 2));
  write_file_atomic(dir / "cut.zst", zs.substr(0, zs.size() / 2));
  std::string bad = gz;
  for (size_t i = 100; i < 200; ++i) bad[i] = static_cast<char>(bad[i] ^ 0x5a);
  write_file_atomic(dir / "bad.gz", bad);
  for (const char* name : {"cut.gz", "cut.zst", "bad.gz"}) {
    try {
      read_file_decompressed(dir / name);
      ADD_FAILURE() << name << " was read without an error";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(name), std::string::npos) << e.what();
    }
  }
  EXPECT_THROW(DecompressingReader(dir / "missing.gz"), Error);
}

}  // namespace
}  // namespace reef
