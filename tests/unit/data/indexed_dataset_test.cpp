// Tests for data/indexed_dataset.h: round trips in uint16 and int32, megatron-style sequences
// and documents, corrupt and truncated files, and bit-compatibility with the documented layout
// read and written by numpy (and with megatron-core itself when it imports).
#include "reef/data/indexed_dataset.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

std::vector<int32_t> as_vector(const TokenView& v) {
  std::vector<int32_t> out;
  v.append_to(&out);
  return out;
}

// The last line of `output` that starts with "RESULT ", parsed as JSON.
nlohmann::json result_json(const std::string& output) {
  size_t at = output.rfind("RESULT ");
  if (at == std::string::npos) return nullptr;
  size_t end = output.find('\n', at);
  return nlohmann::json::parse(
      output.substr(at + 7, end == std::string::npos ? end : end - at - 7));
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(IndexedDataset, DtypeForVocabFollowsMegatron) {
  EXPECT_EQ(token_dtype_for_vocab(50257), TokenDType::kUInt16);
  EXPECT_EQ(token_dtype_for_vocab(65499), TokenDType::kUInt16);
  EXPECT_EQ(token_dtype_for_vocab(65500), TokenDType::kInt32);
  EXPECT_EQ(token_dtype_for_vocab(128256), TokenDType::kInt32);
  EXPECT_EQ(token_dtype_size(TokenDType::kUInt16), 2u);
  EXPECT_EQ(static_cast<int>(TokenDType::kUInt16), 8);
  EXPECT_EQ(static_cast<int>(TokenDType::kInt32), 4);
}

void round_trip(TokenDType dtype, int32_t base) {
  testing::ScratchDir dir;
  const std::string prefix = dir / "ds";
  {
    IndexedDatasetWriter w(prefix, dtype);
    w.add_document({base + 1, base + 2, base + 3});
    w.add_item({base + 4});  // document of two sequences
    w.add_item({base + 5, base + 6});
    w.end_document();
    w.add_document({});  // empty document
    w.add_document({base + 7, base + 8, base + 9, base + 10}, {1, 3});
    w.add_item({base + 11});  // left open: finalize closes it
    EXPECT_FALSE(path_exists(prefix + ".bin"));
    w.finalize();
    EXPECT_EQ(w.num_sequences(), 7);
    EXPECT_EQ(w.num_documents(), 5);
  }
  // Only the two final files remain: no temporaries.
  EXPECT_EQ(list_dir(dir.path()), (std::vector<std::string>{"ds.bin", "ds.idx"}));
  const size_t item = token_dtype_size(dtype);
  EXPECT_EQ(read_file(prefix + ".bin").size(), 11 * item);
  EXPECT_EQ(read_file(prefix + ".idx").size(), 34u + 7 * 12 + 6 * 8);

  IndexedDataset ds(prefix);
  EXPECT_EQ(ds.dtype(), dtype);
  EXPECT_EQ(ds.num_sequences(), 7);
  EXPECT_EQ(ds.num_documents(), 5);
  EXPECT_EQ(ds.num_tokens(), 11);
  std::vector<int64_t> doc_index;
  for (int64_t d = 0; d <= ds.num_documents(); ++d) doc_index.push_back(ds.document_index(d));
  EXPECT_EQ(doc_index,
            (std::vector<int64_t>{0, 1, 3, 4, 6, 7}));  // the empty document is one empty sequence
  EXPECT_EQ(as_vector(ds.get(0)), (std::vector<int32_t>{base + 1, base + 2, base + 3}));
  EXPECT_EQ(as_vector(ds.get(2)), (std::vector<int32_t>{base + 5, base + 6}));
  EXPECT_EQ(ds.sequence_pointer(2), static_cast<int64_t>(4 * item));
  EXPECT_EQ(as_vector(ds.document(1)), (std::vector<int32_t>{base + 4, base + 5, base + 6}));
  EXPECT_EQ(ds.document_length(2), 0);
  EXPECT_EQ(as_vector(ds.document(3)),
            (std::vector<int32_t>{base + 7, base + 8, base + 9, base + 10}));
  EXPECT_EQ(as_vector(ds.document(4)), (std::vector<int32_t>{base + 11}));
  EXPECT_EQ(ds.get(6).at(0), base + 11);
  // Typed pointers point into the map and refuse the wrong dtype.
  if (dtype == TokenDType::kUInt16) {
    EXPECT_EQ(ds.get(1).u16()[0], base + 4);
    EXPECT_THROW(ds.get(1).i32(), Error);
  } else {
    EXPECT_EQ(ds.get(1).i32()[0], base + 4);
    EXPECT_THROW(ds.get(1).u16(), Error);
  }
  EXPECT_THROW(ds.get(7), Error);
  EXPECT_THROW(ds.document(5), Error);
}

TEST(IndexedDataset, RoundTripUInt16) { round_trip(TokenDType::kUInt16, 65000); }
TEST(IndexedDataset, RoundTripInt32) { round_trip(TokenDType::kInt32, 200000); }

TEST(IndexedDataset, WriterRejectsTokensOutsideDtypeAndLeavesNothing) {
  testing::ScratchDir dir;
  {
    IndexedDatasetWriter w(dir / "ds", TokenDType::kUInt16);
    EXPECT_THROW(w.add_document({1, 65536}), Error);
    EXPECT_THROW(w.add_document({-1}), Error);
    EXPECT_THROW(w.add_document({1, 2, 3}, {1, 1}), Error);
    w.add_document({1, 2});
    // Destroyed without finalize().
  }
  EXPECT_TRUE(list_dir(dir.path()).empty());
  IndexedDatasetWriter w32(dir / "big", TokenDType::kInt32);
  EXPECT_THROW(w32.add_document({-5}), Error);
  EXPECT_THROW(IndexedDatasetWriter(dir / "x", TokenDType::kFloat32), Error);
}

class Corrupt : public ::testing::Test {
 protected:
  void SetUp() override {
    prefix_ = dir_ / "ds";
    IndexedDatasetWriter w(prefix_, TokenDType::kUInt16);
    for (int d = 0; d < 10; ++d) w.add_document(std::vector<int32_t>(d + 1, d));
    w.finalize();
    idx_ = read_file(prefix_ + ".idx");
  }
  std::string open_error() {
    return error_of([&] { IndexedDataset ds(prefix_); });
  }
  testing::ScratchDir dir_;
  std::string prefix_, idx_;
};

TEST_F(Corrupt, TruncatedBinNamesTheFile) {
  ASSERT_EQ(::truncate((prefix_ + ".bin").c_str(), 108), 0);  // 110 bytes written
  const std::string e = open_error();
  EXPECT_NE(e.find("ds.bin"), std::string::npos) << e;
  EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  EXPECT_NE(e.find("110 bytes"), std::string::npos) << e;
}

TEST_F(Corrupt, TruncatedIdxNamesTheFile) {
  for (size_t keep : {size_t(0), size_t(20), idx_.size() - 8}) {
    write_file_atomic(prefix_ + ".idx", idx_.substr(0, keep));
    const std::string e = open_error();
    EXPECT_NE(e.find("ds.idx"), std::string::npos) << e;
    EXPECT_NE(e.find("truncated"), std::string::npos) << e;
  }
}

TEST_F(Corrupt, BadHeaderVersionDtypeAndPointers) {
  std::string bad = idx_;
  bad[0] = 'X';
  write_file_atomic(prefix_ + ".idx", bad);
  EXPECT_NE(open_error().find("MMIDIDX"), std::string::npos);
  bad = idx_;
  bad[9] = 2;
  write_file_atomic(prefix_ + ".idx", bad);
  EXPECT_NE(open_error().find("version 2"), std::string::npos);
  bad = idx_;
  bad[17] = 9;
  write_file_atomic(prefix_ + ".idx", bad);
  EXPECT_NE(open_error().find("dtype code 9"), std::string::npos);
  bad = idx_;
  bad[34 + 10 * 4 + 8] = 7;  // pointer of sequence 1
  write_file_atomic(prefix_ + ".idx", bad);
  EXPECT_NE(open_error().find("sequence 1 points at byte"), std::string::npos);
  EXPECT_TRUE(Error("x").kind() == ErrorKind::kRuntime);
  ::unlink((prefix_ + ".idx").c_str());
  EXPECT_NE(open_error().find("not found"), std::string::npos);
}

// Reads PREFIX.idx/.bin with numpy following the documented layout and prints them.
constexpr const char* kNumpyReader = R"PY(
import json, struct, sys
import numpy as np
prefix = sys.argv[1]
idx = open(prefix + ".idx", "rb").read()
assert idx[:9] == b"MMIDIDX\x00\x00", idx[:9]
version, = struct.unpack("<Q", idx[9:17])
code = idx[17]
nseq, ndoc = struct.unpack("<QQ", idx[18:34])
dt = {1: np.uint8, 2: np.int8, 3: np.int16, 4: np.int32, 5: np.int64, 6: np.float64,
      7: np.float32, 8: np.uint16}[code]
off = 34
lengths = np.frombuffer(idx, np.int32, nseq, off); off += 4 * nseq
pointers = np.frombuffer(idx, np.int64, nseq, off); off += 8 * nseq
docs = np.frombuffer(idx, np.int64, ndoc, off); off += 8 * ndoc
assert off == len(idx)
data = np.fromfile(prefix + ".bin", dtype=dt)
seqs = [data[p // np.dtype(dt).itemsize:][:l].tolist() for p, l in zip(pointers, lengths)]
print("RESULT " + json.dumps({"version": version, "code": code, "lengths": lengths.tolist(),
      "pointers": pointers.tolist(), "docs": docs.tolist(), "seqs": seqs}))
)PY";

TEST(IndexedDatasetCompat, NumpyReadsOurFiles) {
  for (auto dtype : {TokenDType::kUInt16, TokenDType::kInt32}) {
    testing::ScratchDir dir;
    const int32_t big = dtype == TokenDType::kInt32 ? 100000 : 0;
    IndexedDatasetWriter w(dir / "ds", dtype);
    w.add_document({5, 6, 7 + big});
    w.add_item({8});
    w.add_item({9, 10});
    w.end_document();
    w.finalize();
    auto r = testing::run_python({"-c", kNumpyReader, dir / "ds"});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    auto j = result_json(r.output);
    EXPECT_EQ(j["version"], 1);
    EXPECT_EQ(j["code"], static_cast<int>(dtype));
    EXPECT_EQ(j["lengths"], nlohmann::json::parse("[3,1,2]"));
    const int item = static_cast<int>(token_dtype_size(dtype));
    EXPECT_EQ(j["pointers"], nlohmann::json::array({0, 3 * item, 4 * item}));
    EXPECT_EQ(j["docs"], nlohmann::json::parse("[0,1,3]"));
    EXPECT_EQ(j["seqs"], nlohmann::json::array({{5, 6, 7 + big}, {8}, {9, 10}}));
  }
}

// Writes a pair with numpy following the documented layout: sequence i has i+1 tokens
// 1000*i + k, documents group sequences [0,1) [1,4) [4,6).
constexpr const char* kNumpyWriter = R"PY(
import struct, sys
import numpy as np
prefix, code = sys.argv[1], int(sys.argv[2])
dt = {4: np.int32, 8: np.uint16}[code]
seqs = [[1000 * i + k for k in range(i + 1)] for i in range(6)]
lengths = np.array([len(s) for s in seqs], np.int32)
pointers = np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(np.int64) * np.dtype(dt).itemsize
docs = np.array([0, 1, 4, 6], np.int64)
np.array([t for s in seqs for t in s], dt).tofile(prefix + ".bin")
with open(prefix + ".idx", "wb") as f:
    f.write(b"MMIDIDX\x00\x00" + struct.pack("<Q", 1) + struct.pack("<B", code))
    f.write(struct.pack("<QQ", len(seqs), len(docs)))
    f.write(lengths.tobytes() + pointers.tobytes() + docs.tobytes())
print("RESULT {}")
)PY";

TEST(IndexedDatasetCompat, WeReadNumpyFiles) {
  for (auto dtype : {TokenDType::kUInt16, TokenDType::kInt32}) {
    testing::ScratchDir dir;
    auto r = testing::run_python(
        {"-c", kNumpyWriter, dir / "ds", std::to_string(static_cast<int>(dtype))});
    ASSERT_EQ(r.exit_code, 0) << r.output;
    IndexedDataset ds(dir / "ds");
    EXPECT_EQ(ds.dtype(), dtype);
    ASSERT_EQ(ds.num_sequences(), 6);
    ASSERT_EQ(ds.num_documents(), 3);
    for (int i = 0; i < 6; ++i) {
      std::vector<int32_t> want;
      for (int k = 0; k <= i; ++k) want.push_back(1000 * i + k);
      EXPECT_EQ(as_vector(ds.get(i)), want);
    }
    EXPECT_EQ(ds.document_length(1), 2 + 3 + 4);
    EXPECT_EQ(ds.document(2).at(0), 4000);
  }
}

// megatron-core's own builder and reader, when the package imports on this machine (CPU).
constexpr const char* kMegatron = R"PY(
import json, sys, warnings
warnings.filterwarnings("ignore")
try:
    import numpy as np, torch
    from megatron.core.datasets.indexed_dataset import IndexedDataset, IndexedDatasetBuilder, DType
except Exception as e:
    print("SKIP", e); sys.exit(0)
ours, theirs = sys.argv[1], sys.argv[2]
ds = IndexedDataset(ours)
out = {"seqs": [ds[i].tolist() for i in range(len(ds))],
       "docs": ds.document_indices.tolist(), "dtype": str(ds.index.dtype.__name__)}
b = IndexedDatasetBuilder(theirs + ".bin", dtype=DType.optimal_dtype(32000))
b.add_item(torch.tensor([1, 2, 3])); b.add_item(torch.tensor([4])); b.end_document()
b.add_document(torch.tensor([5, 6, 7, 8]), [2, 2])
b.finalize(theirs + ".idx")
print("RESULT " + json.dumps(out))
)PY";

TEST(IndexedDatasetCompat, MegatronCoreReadsOursAndWeReadTheirs) {
  testing::ScratchDir dir;
  IndexedDatasetWriter w(dir / "ours", TokenDType::kUInt16);
  w.add_document({11, 12});
  w.add_document({13, 14, 15}, {1, 2});
  w.finalize();
  auto r = testing::run_python({"-c", kMegatron, dir / "ours", dir / "theirs"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  if (r.output.find("SKIP") != std::string::npos && r.output.find("RESULT") == std::string::npos)
    GTEST_SKIP() << "megatron-core does not import: " << r.output;
  auto j = result_json(r.output);
  EXPECT_EQ(j["seqs"], nlohmann::json::parse("[[11,12],[13],[14,15]]"));
  EXPECT_EQ(j["docs"], nlohmann::json::parse("[0,1,3]"));
  EXPECT_EQ(j["dtype"], "uint16");

  IndexedDataset theirs(dir / "theirs");
  EXPECT_EQ(theirs.dtype(), TokenDType::kUInt16);
  EXPECT_EQ(theirs.num_sequences(), 4);
  EXPECT_EQ(theirs.num_documents(), 2);
  EXPECT_EQ(as_vector(theirs.document(0)), (std::vector<int32_t>{1, 2, 3, 4}));
  EXPECT_EQ(as_vector(theirs.get(3)), (std::vector<int32_t>{7, 8}));
  // Byte-identical to what we write for the same content.
  IndexedDatasetWriter same(dir / "same", TokenDType::kUInt16);
  same.add_item({1, 2, 3});
  same.add_item({4});
  same.end_document();
  same.add_document({5, 6, 7, 8}, {2, 2});
  same.finalize();
  EXPECT_EQ(read_file(dir / "same.idx"), read_file(dir / "theirs.idx"));
  EXPECT_EQ(read_file(dir / "same.bin"), read_file(dir / "theirs.bin"));
}

}  // namespace
}  // namespace reef
