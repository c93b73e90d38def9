// Implementation of tensorboard.h. The protobuf wire format is written by hand: the few messages
// needed (Event, Summary, Summary.Value, SummaryMetadata, TensorProto) are tiny and stable, and
// their field numbers come from tensorboard/compat/proto/{event,summary,tensor}.proto.
#include "reef/base/tensorboard.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/log.h"

namespace reef {
namespace {

constexpr size_t kFlushBytes = 64 << 10;
constexpr auto kFlushInterval = std::chrono::seconds(10);

enum WireType : uint32_t { kVarint = 0, kFixed64 = 1, kBytes = 2, kFixed32 = 5 };

// Minimal protobuf encoder: appends fields to a byte string.
class Proto {
 public:
  Proto& varint(uint32_t field, uint64_t v) {
    key(field, kVarint);
    put_varint(v);
    return *this;
  }
  Proto& fixed64_double(uint32_t field, double v) {
    key(field, kFixed64);
    uint64_t bits;
    std::memcpy(&bits, &v, 8);
    put_le(bits, 8);
    return *this;
  }
  Proto& fixed32_float(uint32_t field, float v) {
    key(field, kFixed32);
    uint32_t bits;
    std::memcpy(&bits, &v, 4);
    put_le(bits, 4);
    return *this;
  }
  Proto& bytes(uint32_t field, const std::string& s) {
    key(field, kBytes);
    put_varint(s.size());
    out_ += s;
    return *this;
  }
  Proto& message(uint32_t field, const Proto& m) { return bytes(field, m.out_); }
  const std::string& str() const { return out_; }

 private:
  void key(uint32_t field, WireType w) { put_varint((uint64_t(field) << 3) | w); }
  void put_varint(uint64_t v) {
    while (v >= 0x80) {
      out_.push_back(char((v & 0x7F) | 0x80));
      v >>= 7;
    }
    out_.push_back(char(v));
  }
  void put_le(uint64_t v, int n) {
    for (int i = 0; i < n; ++i) out_.push_back(char((v >> (8 * i)) & 0xFF));
  }
  std::string out_;
};

// Event field numbers (event.proto).
constexpr uint32_t kEventWallTime = 1, kEventStep = 2, kEventFileVersion = 3, kEventSummary = 5;
// Summary / Summary.Value (summary.proto).
constexpr uint32_t kSummaryValue = 1;
constexpr uint32_t kValueTag = 1, kValueSimpleValue = 2, kValueTensor = 8, kValueMetadata = 9;
// SummaryMetadata.plugin_data, PluginData.plugin_name.
constexpr uint32_t kMetadataPluginData = 1, kPluginName = 1;
// TensorProto (tensor.proto): dtype, tensor_shape, string_val; TensorShapeProto.dim, Dim.size.
constexpr uint32_t kTensorDtype = 1, kTensorShape = 2, kTensorStringVal = 8;
constexpr uint32_t kShapeDim = 2, kDimSize = 1;
constexpr uint64_t kDtString = 7;  // types.proto DT_STRING

double wall_time_now() {
  using namespace std::chrono;
  return duration<double>(system_clock::now().time_since_epoch()).count();
}

Proto event_header(int64_t step) {
  Proto e;
  e.fixed64_double(kEventWallTime, wall_time_now());
  if (step != 0) e.varint(kEventStep, static_cast<uint64_t>(step));
  return e;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

std::atomic<int> g_file_counter{0};

}  // namespace

TensorBoardWriter::TensorBoardWriter(const std::string& logdir) {
  make_dirs(logdir);
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(
                  std::chrono::system_clock::now().time_since_epoch())
                  .count();
  path_ = join_path(logdir, fmt::format("events.out.tfevents.{}.{}.{}.{}", secs, hostname(),
                                        ::getpid(), g_file_counter++));
  fd_ = ::open(path_.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("cannot create TensorBoard event file {}: {}", path_, std::strerror(errno));
  Proto e;
  e.fixed64_double(kEventWallTime, wall_time_now()).bytes(kEventFileVersion, "brain.Event:2");
  std::lock_guard<std::mutex> lock(mu_);
  append_event(e.str());
  flush_locked();
}

TensorBoardWriter::~TensorBoardWriter() {
  try {
    std::lock_guard<std::mutex> lock(mu_);
    flush_locked();
  } catch (const std::exception& ex) {
    log_warn("{}", ex.what());
  }
  if (fd_ >= 0) ::close(fd_);
}

void TensorBoardWriter::add_scalar(const std::string& tag, double value, int64_t step) {
  Proto v;
  v.bytes(kValueTag, tag).fixed32_float(kValueSimpleValue, static_cast<float>(value));
  Proto summary;
  summary.message(kSummaryValue, v);
  Proto e = event_header(step);
  e.message(kEventSummary, summary);
  std::lock_guard<std::mutex> lock(mu_);
  append_event(e.str());
}

void TensorBoardWriter::add_text(const std::string& tag, const std::string& text, int64_t step) {
  Proto plugin;
  plugin.bytes(kPluginName, "text");
  Proto metadata;
  metadata.message(kMetadataPluginData, plugin);
  Proto dim;
  dim.varint(kDimSize, 1);
  Proto shape;
  shape.message(kShapeDim, dim);
  Proto tensor;
  tensor.varint(kTensorDtype, kDtString).message(kTensorShape, shape).bytes(kTensorStringVal, text);
  Proto v;
  v.bytes(kValueTag, tag).message(kValueMetadata, metadata).message(kValueTensor, tensor);
  Proto summary;
  summary.message(kSummaryValue, v);
  Proto e = event_header(step);
  e.message(kEventSummary, summary);
  std::lock_guard<std::mutex> lock(mu_);
  append_event(e.str());
}

void TensorBoardWriter::flush() {
  std::lock_guard<std::mutex> lock(mu_);
  flush_locked();
}

// TFRecord: u64 length, masked crc32c(length), data, masked crc32c(data); all little-endian.
void TensorBoardWriter::append_event(const std::string& event) {
  char len[8];
  uint64_t n = event.size();
  for (int i = 0; i < 8; ++i) len[i] = char((n >> (8 * i)) & 0xFF);
  auto put_u32 = [this](uint32_t v) {
    for (int i = 0; i < 4; ++i) buffer_.push_back(char((v >> (8 * i)) & 0xFF));
  };
  buffer_.append(len, 8);
  put_u32(crc32c_mask(crc32c(len, 8)));
  buffer_ += event;
  put_u32(crc32c_mask(crc32c(event.data(), event.size())));
  if (buffer_.size() >= kFlushBytes ||
      std::chrono::steady_clock::now() - last_write_ >= kFlushInterval)
    flush_locked();
}

void TensorBoardWriter::flush_locked() {
  const char* p = buffer_.data();
  size_t n = buffer_.size();
  while (n > 0) {
    ssize_t w = ::write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      int e = errno;
      // Drop what is left: retrying a failed disk forever would stall training.
      buffer_.clear();
      fail("cannot write TensorBoard event file {}: {}", path_, std::strerror(e));
    }
    p += w;
    n -= static_cast<size_t>(w);
  }
  buffer_.clear();
  last_write_ = std::chrono::steady_clock::now();
}

}  // namespace reef
