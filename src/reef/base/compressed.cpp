// Implementation of base/compressed.h with zlib's inflate (gzip, windowBits 15+16) and
// libzstd's streaming decoder.
#include "reef/base/compressed.h"

#include <zlib.h>
#include <zstd.h>

#include <cstring>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/strings.h"

namespace reef {

struct DecompressingReader::Codec {
  std::vector<char> in = std::vector<char>(1 << 18);
  size_t in_pos = 0, in_end = 0;
  bool eof = false;
  // gzip
  z_stream z{};
  bool z_init = false, z_member_done = false;
  // zstd
  ZSTD_DStream* zs = nullptr;
  size_t zs_last = 0;  // ZSTD_decompressStream's last hint: 0 at a frame boundary
};

Compression detect_compression(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) usage_error("cannot open input {}", path);
  unsigned char m[4] = {0, 0, 0, 0};
  size_t n = std::fread(m, 1, 4, f);
  std::fclose(f);
  if (n >= 2 && m[0] == 0x1f && m[1] == 0x8b) return Compression::kGzip;
  if (n == 4 && m[0] == 0x28 && m[1] == 0xb5 && m[2] == 0x2f && m[3] == 0xfd)
    return Compression::kZstd;
  return Compression::kNone;
}

const char* compression_name(Compression c) {
  switch (c) {
    case Compression::kGzip:
      return "gzip";
    case Compression::kZstd:
      return "zstd";
    case Compression::kNone:
      break;
  }
  return "none";
}

std::string strip_compression_suffix(const std::string& path) {
  for (const char* s : {".gz", ".zst", ".zstd"})
    if (ends_with(path, s)) return path.substr(0, path.size() - std::strlen(s));
  return path;
}

DecompressingReader::DecompressingReader(const std::string& path)
    : path_(path), kind_(detect_compression(path)), codec_(std::make_unique<Codec>()) {
  f_ = std::fopen(path.c_str(), "rb");
  if (!f_) usage_error("cannot open input {}", path);
  if (kind_ == Compression::kGzip) {
    if (inflateInit2(&codec_->z, 15 + 16) != Z_OK) fail("{}: cannot start the gzip decoder", path);
    codec_->z_init = true;
  } else if (kind_ == Compression::kZstd) {
    codec_->zs = ZSTD_createDStream();
    if (!codec_->zs || ZSTD_isError(ZSTD_initDStream(codec_->zs)))
      fail("{}: cannot start the zstd decoder", path);
  }
}

DecompressingReader::~DecompressingReader() {
  if (codec_->z_init) inflateEnd(&codec_->z);
  if (codec_->zs) ZSTD_freeDStream(codec_->zs);
  if (f_) std::fclose(f_);
}

size_t DecompressingReader::read_raw(char* buf, size_t n) {
  size_t got = std::fread(buf, 1, n, f_);
  if (got == 0 && std::ferror(f_)) fail("read error on {}", path_);
  file_pos_ += static_cast<int64_t>(got);
  return got;
}

bool DecompressingReader::fill_input() {
  Codec& c = *codec_;
  if (c.in_pos < c.in_end) return true;
  if (c.eof) return false;
  c.in_end = read_raw(c.in.data(), c.in.size());
  c.in_pos = 0;
  if (c.in_end == 0) c.eof = true;
  return c.in_end > 0;
}

size_t DecompressingReader::read(char* buf, size_t n) {
  if (n == 0) return 0;
  if (kind_ == Compression::kNone) return read_raw(buf, n);
  Codec& c = *codec_;
  for (;;) {
    if (!fill_input()) {
      // End of file: it must end on a member / frame boundary.
      bool clean = kind_ == Compression::kGzip ? c.z_member_done : c.zs_last == 0;
      if (!clean) fail("{}: truncated {} data", path_, compression_name(kind_));
      return 0;
    }
    size_t produced = 0;
    if (kind_ == Compression::kGzip) {
      if (c.z_member_done) {
        // Another gzip member follows (concatenated .gz files are one stream).
        inflateReset(&c.z);
        c.z_member_done = false;
      }
      c.z.next_in = reinterpret_cast<Bytef*>(c.in.data() + c.in_pos);
      c.z.avail_in = static_cast<uInt>(c.in_end - c.in_pos);
      c.z.next_out = reinterpret_cast<Bytef*>(buf);
      c.z.avail_out = static_cast<uInt>(std::min<size_t>(n, 1u << 30));
      int rc = inflate(&c.z, Z_NO_FLUSH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR)
        fail("{}: corrupt gzip data ({})", path_, c.z.msg ? c.z.msg : zError(rc));
      c.in_pos = c.in_end - c.z.avail_in;
      produced = std::min<size_t>(n, 1u << 30) - c.z.avail_out;
      if (rc == Z_STREAM_END) c.z_member_done = true;
    } else {
      ZSTD_inBuffer in{c.in.data(), c.in_end, c.in_pos};
      ZSTD_outBuffer out{buf, n, 0};
      size_t rc = ZSTD_decompressStream(c.zs, &out, &in);
      if (ZSTD_isError(rc)) fail("{}: corrupt zstd data ({})", path_, ZSTD_getErrorName(rc));
      c.zs_last = rc;
      c.in_pos = in.pos;
      produced = out.pos;
    }
    if (produced > 0) return produced;
  }
}

std::string read_file_decompressed(const std::string& path) {
  DecompressingReader r(path);
  std::string out;
  std::vector<char> buf(1 << 20);
  for (size_t got; (got = r.read(buf.data(), buf.size())) > 0;) out.append(buf.data(), got);
  return out;
}

}  // namespace reef
