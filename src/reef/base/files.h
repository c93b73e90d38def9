// Files: whole-file reads, atomic writes (temp file + fsync + rename) so that nothing is ever
// half-written, read-only memory maps for large tensors and token data, and directory helpers.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace reef {

// Reads a whole file; throws reef::Error naming the path when it cannot.
std::string read_file(const std::string& path);

// Writes `data` to `path` atomically: a temp file beside it is written, fsynced and renamed.
void write_file_atomic(const std::string& path, std::string_view data);

// A writer that streams into `<path>.tmp.<pid>` and renames onto `path` on commit(); if it is
// destroyed without commit() the temp file is removed.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(const void* data, size_t n);
  void write(std::string_view s) { write(s.data(), s.size()); }
  uint64_t bytes_written() const { return written_; }
  void commit();

 private:
  std::string path_, tmp_;
  int fd_ = -1;
  uint64_t written_ = 0;
};

// A read-only memory map of a whole file. Shared ownership lets tensors keep it alive.
class MappedFile {
 public:
  static std::shared_ptr<MappedFile> open(const std::string& path);
  ~MappedFile();
  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  MappedFile() = default;
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

// Drops the pages of a read-only file mapping that lie wholly inside [p, p+n) from this
// process's memory (madvise DONTNEED); touching them again re-reads the file. Loading weights
// calls it after each tensor is copied out, so peak RSS is the model, not model + file.
void release_mapped_pages(const void* p, size_t n);

bool path_exists(const std::string& path);
bool is_directory(const std::string& path);
void make_dirs(const std::string& path);
void remove_all(const std::string& path);
// Renames a directory (or file) atomically; throws with both paths on failure.
void rename_path(const std::string& from, const std::string& to);
// fsyncs a directory so that renames inside it are durable.
void fsync_dir(const std::string& path);
// Entries (names, not paths) of a directory, sorted.
std::vector<std::string> list_dir(const std::string& path);
std::string join_path(const std::string& a, const std::string& b);
// A fresh directory under $TMPDIR (or /tmp) with the given prefix.
std::string make_temp_dir(const std::string& prefix);

}  // namespace reef
