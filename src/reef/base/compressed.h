// Input files that may be gzip- or zstd-compressed, read as one decompressed byte stream.
// Corpora ship as .jsonl.gz / .jsonl.zst; the compression is recognised by the file's magic
// bytes (not its name), and multi-member gzip and multi-frame zstd files are read whole.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>

namespace reef {

enum class Compression { kNone, kGzip, kZstd };

// What the first bytes of `path` say it is. Throws a usage error if it cannot be opened.
Compression detect_compression(const std::string& path);
const char* compression_name(Compression c);

// `path` without a trailing .gz / .zst / .zstd, so "a.jsonl.gz" is recognised as JSONL.
std::string strip_compression_suffix(const std::string& path);

class DecompressingReader {
 public:
  explicit DecompressingReader(const std::string& path);
  ~DecompressingReader();
  DecompressingReader(const DecompressingReader&) = delete;
  DecompressingReader& operator=(const DecompressingReader&) = delete;

  // Reads up to n decompressed bytes; 0 at the end. A corrupt or truncated compressed file
  // throws an error naming the file.
  size_t read(char* buf, size_t n);
  // Bytes of the file itself consumed so far (for progress over compressed inputs).
  int64_t file_position() const { return file_pos_; }
  Compression compression() const { return kind_; }

 private:
  size_t read_raw(char* buf, size_t n);
  bool fill_input();  // refills in_ from the file; false at end of file

  std::string path_;
  Compression kind_ = Compression::kNone;
  std::FILE* f_ = nullptr;
  int64_t file_pos_ = 0;
  struct Codec;
  std::unique_ptr<Codec> codec_;
};

// The whole decompressed content of `path`.
std::string read_file_decompressed(const std::string& path);

}  // namespace reef
