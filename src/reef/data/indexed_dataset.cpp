// Implementation of data/indexed_dataset.h. The .idx layout (all little-endian, packed):
//   9 bytes "MMIDIDX\0\0" | u64 version = 1 | u8 dtype code | u64 sequence count N |
//   u64 document-index entries D (documents + 1) | i32 lengths[N] | i64 pointers[N] |
//   i64 document_index[D] (starting with 0) | optional i8 modes[N] (multimodal, ignored here).
// The arrays start at byte 34, so they are unaligned: they are read with memcpy.
#include "reef/data/indexed_dataset.h"

#include <cstring>
#include <limits>

#include "reef/base/error.h"

namespace reef {
namespace {

constexpr char kMagic[9] = {'M', 'M', 'I', 'D', 'I', 'D', 'X', '\0', '\0'};
constexpr size_t kHeaderBytes = 34;
constexpr size_t kWriteBuffer = 1 << 20;

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  return v;
}

template <typename T>
void put(std::string* s, T v) {
  s->append(reinterpret_cast<const char*>(&v), sizeof(T));
}

bool valid_code(uint8_t c) { return c >= 1 && c <= 8; }

}  // namespace

size_t token_dtype_size(TokenDType d) {
  switch (d) {
    case TokenDType::kUInt8:
    case TokenDType::kInt8:
      return 1;
    case TokenDType::kInt16:
    case TokenDType::kUInt16:
      return 2;
    case TokenDType::kInt32:
    case TokenDType::kFloat32:
      return 4;
    case TokenDType::kInt64:
    case TokenDType::kFloat64:
      return 8;
  }
  fail("unknown token dtype code {}", static_cast<int>(d));
}

const char* token_dtype_name(TokenDType d) {
  switch (d) {
    case TokenDType::kUInt8:
      return "uint8";
    case TokenDType::kInt8:
      return "int8";
    case TokenDType::kInt16:
      return "int16";
    case TokenDType::kInt32:
      return "int32";
    case TokenDType::kInt64:
      return "int64";
    case TokenDType::kFloat64:
      return "float64";
    case TokenDType::kFloat32:
      return "float32";
    case TokenDType::kUInt16:
      return "uint16";
  }
  return "unknown";
}

TokenDType token_dtype_for_vocab(int64_t vocab_size) {
  return vocab_size < 65500 ? TokenDType::kUInt16 : TokenDType::kInt32;
}

std::string idx_path(const std::string& prefix) { return prefix + ".idx"; }
std::string bin_path(const std::string& prefix) { return prefix + ".bin"; }

// ---- TokenView ----

int64_t TokenView::at(int64_t k) const {
  const uint8_t* p = data + static_cast<size_t>(k) * token_dtype_size(dtype);
  switch (dtype) {
    case TokenDType::kUInt8:
      return *p;
    case TokenDType::kInt8:
      return load<int8_t>(p);
    case TokenDType::kInt16:
      return load<int16_t>(p);
    case TokenDType::kUInt16:
      return load<uint16_t>(p);
    case TokenDType::kInt32:
      return load<int32_t>(p);
    case TokenDType::kInt64:
      return load<int64_t>(p);
    case TokenDType::kFloat32:
      return static_cast<int64_t>(load<float>(p));
    case TokenDType::kFloat64:
      return static_cast<int64_t>(load<double>(p));
  }
  return 0;
}

const uint16_t* TokenView::u16() const {
  if (dtype != TokenDType::kUInt16) fail("token view is {}, not uint16", token_dtype_name(dtype));
  return reinterpret_cast<const uint16_t*>(data);
}

const int32_t* TokenView::i32() const {
  if (dtype != TokenDType::kInt32) fail("token view is {}, not int32", token_dtype_name(dtype));
  return reinterpret_cast<const int32_t*>(data);
}

void TokenView::append_to(std::vector<int32_t>* out, int64_t offset, int64_t count) const {
  if (offset < 0 || count < 0 || offset + count > size)
    fail("token range [{}, {}) outside a view of {} tokens", offset, offset + count, size);
  if (dtype == TokenDType::kUInt16) {
    const uint16_t* p = u16() + offset;
    out->insert(out->end(), p, p + count);
  } else if (dtype == TokenDType::kInt32) {
    const int32_t* p = i32() + offset;
    out->insert(out->end(), p, p + count);
  } else {
    for (int64_t k = 0; k < count; ++k) out->push_back(static_cast<int32_t>(at(offset + k)));
  }
}

// ---- IndexedDatasetWriter ----

IndexedDatasetWriter::IndexedDatasetWriter(std::string prefix, TokenDType dtype)
    : prefix_(std::move(prefix)), dtype_(dtype) {
  if (dtype_ != TokenDType::kUInt16 && dtype_ != TokenDType::kInt32)
    usage_error("indexed dataset {}: tokens are written as uint16 or int32, not {}", prefix_,
                token_dtype_name(dtype_));
  bin_ = std::make_unique<AtomicFileWriter>(bin_path(prefix_));
  buf_.reserve(kWriteBuffer);
}

IndexedDatasetWriter::~IndexedDatasetWriter() = default;

void IndexedDatasetWriter::flush() {
  if (!buf_.empty()) bin_->write(buf_.data(), buf_.size());
  buf_.clear();
}

void IndexedDatasetWriter::add_item(const int32_t* tokens, size_t n) {
  if (finalized_) fail("indexed dataset {}: add_item after finalize", prefix_);
  if (n > static_cast<size_t>(std::numeric_limits<int32_t>::max()))
    fail("indexed dataset {}: a sequence of {} tokens exceeds the int32 length field", prefix_, n);
  const bool u16 = dtype_ == TokenDType::kUInt16;
  for (size_t i = 0; i < n; ++i) {
    int32_t t = tokens[i];
    if (t < 0 || (u16 && t > 65535))
      fail("indexed dataset {}: token {} does not fit {} (sequence {}, position {})", prefix_, t,
           token_dtype_name(dtype_), lengths_.size(), i);
    if (u16) {
      uint16_t v = static_cast<uint16_t>(t);
      const uint8_t* b = reinterpret_cast<const uint8_t*>(&v);
      buf_.insert(buf_.end(), b, b + 2);
    } else {
      const uint8_t* b = reinterpret_cast<const uint8_t*>(&t);
      buf_.insert(buf_.end(), b, b + 4);
    }
    if (buf_.size() >= kWriteBuffer) flush();
  }
  lengths_.push_back(static_cast<int32_t>(n));
  n_tokens_ += static_cast<int64_t>(n);
}

void IndexedDatasetWriter::end_document() {
  doc_indices_.push_back(static_cast<int64_t>(lengths_.size()));
}

void IndexedDatasetWriter::add_document(const std::vector<int32_t>& tokens) {
  add_item(tokens);
  end_document();
}

void IndexedDatasetWriter::add_document(const std::vector<int32_t>& tokens,
                                        const std::vector<int32_t>& lengths) {
  int64_t sum = 0;
  for (int32_t l : lengths) {
    if (l < 0) fail("indexed dataset {}: negative sequence length {}", prefix_, l);
    sum += l;
  }
  if (sum != static_cast<int64_t>(tokens.size()))
    fail("indexed dataset {}: sequence lengths sum to {} but the document has {} tokens", prefix_,
         sum, tokens.size());
  size_t off = 0;
  for (int32_t l : lengths) {
    add_item(tokens.data() + off, static_cast<size_t>(l));
    off += static_cast<size_t>(l);
  }
  end_document();
}

void IndexedDatasetWriter::finalize() {
  if (finalized_) fail("indexed dataset {}: finalize called twice", prefix_);
  if (doc_indices_.back() != static_cast<int64_t>(lengths_.size())) end_document();
  flush();

  std::string idx;
  idx.reserve(kHeaderBytes + lengths_.size() * 12 + doc_indices_.size() * 8);
  idx.append(kMagic, sizeof(kMagic));
  put<uint64_t>(&idx, 1);
  put<uint8_t>(&idx, static_cast<uint8_t>(dtype_));
  put<uint64_t>(&idx, lengths_.size());
  put<uint64_t>(&idx, doc_indices_.size());
  idx.append(reinterpret_cast<const char*>(lengths_.data()), lengths_.size() * sizeof(int32_t));
  const int64_t item = static_cast<int64_t>(token_dtype_size(dtype_));
  int64_t ptr = 0;
  for (int32_t l : lengths_) {
    put<int64_t>(&idx, ptr);
    ptr += l * item;
  }
  idx.append(reinterpret_cast<const char*>(doc_indices_.data()),
             doc_indices_.size() * sizeof(int64_t));

  // .bin first: a crash between the renames leaves a new .bin beside an old .idx, which the
  // reader rejects by size rather than reading silently wrong tokens.
  AtomicFileWriter idx_writer(idx_path(prefix_));
  idx_writer.write(idx);
  bin_->commit();
  idx_writer.commit();
  finalized_ = true;
}

// ---- IndexedDataset ----

IndexedDataset::IndexedDataset(const std::string& prefix) : prefix_(prefix) {
  const std::string ip = idx_path(prefix), bp = bin_path(prefix);
  if (!path_exists(ip)) usage_error("indexed dataset {}: index file {} not found", prefix, ip);
  if (!path_exists(bp)) usage_error("indexed dataset {}: data file {} not found", prefix, bp);
  idx_ = MappedFile::open(ip);
  bin_ = MappedFile::open(bp);
  const uint8_t* p = idx_->data();
  const size_t n = idx_->size();
  if (n < kHeaderBytes)
    fail("{}: truncated index: {} bytes, shorter than the {}-byte header", ip, n, kHeaderBytes);
  if (std::memcmp(p, kMagic, sizeof(kMagic)) != 0)
    fail("{}: not a Megatron indexed dataset index (no MMIDIDX header)", ip);
  const uint64_t version = load<uint64_t>(p + 9);
  if (version != 1) fail("{}: unsupported index version {} (expected 1)", ip, version);
  const uint8_t code = p[17];
  if (!valid_code(code)) fail("{}: unknown dtype code {} (Megatron codes are 1..8)", ip, code);
  dtype_ = static_cast<TokenDType>(code);
  itemsize_ = token_dtype_size(dtype_);
  const uint64_t n_seq = load<uint64_t>(p + 18), n_doc = load<uint64_t>(p + 26);
  // Guard the arithmetic below against absurd counts from a corrupt header.
  if (n_seq > n || n_doc > n || n_doc == 0)
    fail("{}: corrupt index: {} sequences and {} document-index entries in a {}-byte file", ip,
         n_seq, n_doc, n);
  const size_t expected = kHeaderBytes + n_seq * 12 + n_doc * 8;
  // megatron-core's multimodal datasets append one mode byte per sequence.
  if (n != expected && n != expected + n_seq)
    fail(
        "{}: truncated or corrupt index: {} sequences and {} document-index entries need {} "
        "bytes, the file has {}",
        ip, n_seq, n_doc, expected, n);
  n_seq_ = static_cast<int64_t>(n_seq);
  n_doc_entries_ = static_cast<int64_t>(n_doc);
  lengths_off_ = kHeaderBytes;
  pointers_off_ = lengths_off_ + n_seq * 4;
  docs_off_ = pointers_off_ + n_seq * 8;

  // Pointers must be the running sum of lengths: this both catches corruption and makes every
  // document a contiguous token range.
  int64_t ptr = 0;
  for (int64_t i = 0; i < n_seq_; ++i) {
    const int32_t len = sequence_length(i);
    if (len < 0) fail("{}: corrupt index: sequence {} has negative length {}", ip, i, len);
    if (sequence_pointer(i) != ptr)
      fail("{}: corrupt index: sequence {} points at byte {}, expected {}", ip, i,
           sequence_pointer(i), ptr);
    ptr += static_cast<int64_t>(len) * static_cast<int64_t>(itemsize_);
  }
  n_tokens_ = ptr / static_cast<int64_t>(itemsize_);
  if (static_cast<uint64_t>(ptr) != bin_->size())
    fail("{}: {} data file: the index describes {} tokens ({} bytes) but the file has {} bytes", bp,
         static_cast<uint64_t>(ptr) > bin_->size() ? "truncated" : "mismatched", n_tokens_, ptr,
         bin_->size());
  if (document_index(0) != 0) fail("{}: corrupt index: document index does not start at 0", ip);
  for (int64_t d = 1; d < n_doc_entries_; ++d) {
    const int64_t a = document_index(d - 1), b = document_index(d);
    if (b < a || b > n_seq_)
      fail("{}: corrupt index: document index entry {} is {} (previous {}, {} sequences)", ip, d, b,
           a, n_seq_);
  }
}

int32_t IndexedDataset::sequence_length(int64_t i) const {
  return load<int32_t>(idx_->data() + lengths_off_ + static_cast<size_t>(i) * 4);
}

int64_t IndexedDataset::sequence_pointer(int64_t i) const {
  return load<int64_t>(idx_->data() + pointers_off_ + static_cast<size_t>(i) * 8);
}

int64_t IndexedDataset::document_index(int64_t d) const {
  if (d < 0 || d >= n_doc_entries_)
    fail("indexed dataset {}: document index entry {} out of range [0, {})", prefix_, d,
         n_doc_entries_);
  return load<int64_t>(idx_->data() + docs_off_ + static_cast<size_t>(d) * 8);
}

TokenView IndexedDataset::get(int64_t i) const {
  if (i < 0 || i >= n_seq_)
    fail("indexed dataset {}: sequence {} out of range [0, {})", prefix_, i, n_seq_);
  return TokenView{bin_->data() + sequence_pointer(i), sequence_length(i), dtype_};
}

TokenView IndexedDataset::document(int64_t d) const {
  if (d < 0 || d >= num_documents())
    fail("indexed dataset {}: document {} out of range [0, {})", prefix_, d, num_documents());
  const int64_t s0 = document_index(d), s1 = document_index(d + 1);
  if (s0 == s1) return TokenView{bin_->data(), 0, dtype_};
  const int64_t begin = sequence_pointer(s0);
  const int64_t end = sequence_pointer(s1 - 1) + static_cast<int64_t>(sequence_length(s1 - 1)) *
                                                     static_cast<int64_t>(itemsize_);
  return TokenView{bin_->data() + begin, (end - begin) / static_cast<int64_t>(itemsize_), dtype_};
}

}  // namespace reef
