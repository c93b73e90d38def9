// The Megatron-LM / NeMo indexed dataset: PREFIX.bin holds raw tokens back to back and
// PREFIX.idx describes them (MMIDIDX header, version 1, dtype code, sequence lengths, byte
// pointers, document indices). Files written here are read by megatron-core unchanged and
// files written by megatron-core's IndexedDatasetBuilder are read here through a memory map.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "reef/base/files.h"

namespace reef {

// Megatron's numeric dtype codes (megatron.core.datasets.indexed_dataset.DType).
enum class TokenDType : uint8_t {
  kUInt8 = 1,
  kInt8 = 2,
  kInt16 = 3,
  kInt32 = 4,
  kInt64 = 5,
  kFloat64 = 6,
  kFloat32 = 7,
  kUInt16 = 8,
};

size_t token_dtype_size(TokenDType d);
const char* token_dtype_name(TokenDType d);
// Megatron's DType.optimal_dtype: uint16 when vocab_size < 65500, int32 otherwise.
TokenDType token_dtype_for_vocab(int64_t vocab_size);

std::string idx_path(const std::string& prefix);  // PREFIX.idx
std::string bin_path(const std::string& prefix);  // PREFIX.bin

// Tokens of one sequence (or a document, or any contiguous range): a view into the mmap.
struct TokenView {
  const uint8_t* data = nullptr;
  int64_t size = 0;  // in tokens
  TokenDType dtype = TokenDType::kInt32;

  int64_t at(int64_t k) const;
  // Typed pointers; throw unless the dtype matches.
  const uint16_t* u16() const;
  const int32_t* i32() const;
  // Appends tokens [offset, offset+count) converted to int32.
  void append_to(std::vector<int32_t>* out, int64_t offset, int64_t count) const;
  void append_to(std::vector<int32_t>* out) const { append_to(out, 0, size); }
};

// Streams tokens into PREFIX.bin (under a temporary name) and keeps the lengths in memory;
// finalize() writes PREFIX.idx and renames both. Semantics follow megatron-core's
// IndexedDatasetBuilder: add_item() appends one sequence, end_document() closes a document
// made of the sequences added since the previous one, add_document() does both at once.
// Without finalize() nothing appears under the final names.
class IndexedDatasetWriter {
 public:
  IndexedDatasetWriter(std::string prefix, TokenDType dtype);
  ~IndexedDatasetWriter();
  IndexedDatasetWriter(const IndexedDatasetWriter&) = delete;
  IndexedDatasetWriter& operator=(const IndexedDatasetWriter&) = delete;

  // Throws when a token does not fit the dtype (e.g. negative, or > 65535 for uint16).
  void add_item(const int32_t* tokens, size_t n);
  void add_item(const std::vector<int32_t>& tokens) { add_item(tokens.data(), tokens.size()); }
  void end_document();
  // One document of one sequence.
  void add_document(const std::vector<int32_t>& tokens);
  // One document of several sequences whose lengths sum to tokens.size().
  void add_document(const std::vector<int32_t>& tokens, const std::vector<int32_t>& lengths);
  // Closes an open document (sequences added since the last end_document), writes the index
  // and renames both files onto PREFIX.bin / PREFIX.idx.
  void finalize();

  int64_t num_sequences() const { return static_cast<int64_t>(lengths_.size()); }
  int64_t num_documents() const { return static_cast<int64_t>(doc_indices_.size()) - 1; }
  int64_t num_tokens() const { return n_tokens_; }

 private:
  void flush();
  std::string prefix_;
  TokenDType dtype_;
  std::unique_ptr<AtomicFileWriter> bin_;
  std::vector<uint8_t> buf_;
  std::vector<int32_t> lengths_;
  std::vector<int64_t> doc_indices_{0};
  int64_t n_tokens_ = 0;
  bool finalized_ = false;
};

// Memory-mapped reader. Opening validates the header, version, dtype, counts, pointers and
// that PREFIX.bin is exactly as long as the index says; every error names the file.
class IndexedDataset {
 public:
  explicit IndexedDataset(const std::string& prefix);

  const std::string& prefix() const { return prefix_; }
  TokenDType dtype() const { return dtype_; }
  int64_t num_sequences() const { return n_seq_; }
  // Documents, not counting megatron's leading 0 in the document index.
  int64_t num_documents() const { return n_doc_entries_ - 1; }
  int64_t num_tokens() const { return n_tokens_; }

  int32_t sequence_length(int64_t i) const;
  int64_t sequence_pointer(int64_t i) const;  // byte offset into .bin
  // Megatron's document index: entry d is the first sequence of document d; entry
  // num_documents() is the end. document_index(0) == 0.
  int64_t document_index(int64_t d) const;

  TokenView get(int64_t i) const;  // sequence i
  // All tokens of document d (its sequences are contiguous in .bin).
  TokenView document(int64_t d) const;
  int64_t document_length(int64_t d) const { return document(d).size; }

  // Bytes of the .idx file, for cache keys.
  const MappedFile& idx_file() const { return *idx_; }
  const MappedFile& bin_file() const { return *bin_; }

 private:
  std::string prefix_;
  std::shared_ptr<MappedFile> idx_, bin_;
  TokenDType dtype_ = TokenDType::kInt32;
  size_t itemsize_ = 4;
  int64_t n_seq_ = 0, n_doc_entries_ = 0, n_tokens_ = 0;
  size_t lengths_off_ = 0, pointers_off_ = 0, docs_off_ = 0;
};

}  // namespace reef
