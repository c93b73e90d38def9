// TensorBoard event files written natively: TFRecord framing (length, masked CRC-32C, payload,
// masked CRC-32C) around hand-encoded Event protobufs, so a run folder opens in `tensorboard`
// without Python or protobuf at run time.
#pragma once

#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>

#include "reef/base/crc32c.h"

namespace reef {

// Appends scalar (and text) summaries to one event file,
// `<logdir>/events.out.tfevents.<unix_seconds>.<hostname>.<pid>.<n>`. The first record is the
// "brain.Event:2" file-version event. Records are buffered and appended on flush(), when 64 KiB
// are pending, or on the first record 10 s after the last write (no background thread), always
// as whole records. Not fsynced: TensorBoard reads the page cache. Thread-safe. Errors are
// reef::Error naming the file.
class TensorBoardWriter {
 public:
  explicit TensorBoardWriter(const std::string& logdir);  // creates logdir
  ~TensorBoardWriter();                                   // flushes; never throws
  TensorBoardWriter(const TensorBoardWriter&) = delete;
  TensorBoardWriter& operator=(const TensorBoardWriter&) = delete;

  // `value` is stored as float32 (Summary.Value.simple_value).
  void add_scalar(const std::string& tag, double value, int64_t step);
  // A string tensor summary for TensorBoard's text plugin (markdown is rendered).
  void add_text(const std::string& tag, const std::string& text, int64_t step);
  void flush();
  const std::string& path() const { return path_; }

 private:
  void append_event(const std::string& event);  // frames a serialized Event into buffer_
  void flush_locked();

  std::mutex mu_;
  std::string path_;
  int fd_ = -1;
  std::string buffer_;
  std::chrono::steady_clock::time_point last_write_;
};

}  // namespace reef
