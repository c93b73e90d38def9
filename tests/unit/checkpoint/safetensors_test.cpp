// Tests for checkpoint/safetensors.h: round trips of every dtype and shape, the reader's
// diagnostics on hand-built malformed files, truncation, checksums, and cross-checks with the
// Python `safetensors` library in both directions (values and exact bytes).
#include "reef/checkpoint/safetensors.h"

#include <gtest/gtest.h>
#include <torch/version.h>

#include <cstring>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

// Deterministic values both C++ and Python compute: (i * 37 mod 101) / 2, cast to the dtype.
torch::Tensor pattern(torch::ScalarType dtype, std::vector<int64_t> shape) {
  int64_t n = 1;
  for (auto d : shape) n *= d;
  return torch::arange(n, torch::kFloat64).mul(37).remainder(101).mul(0.5).reshape(shape).to(dtype);
}

std::string bytes_of(const torch::Tensor& t) {
  torch::Tensor c = t.contiguous();
  return std::string(static_cast<const char*>(c.data_ptr()), c.numel() * c.element_size());
}

void expect_same(const torch::Tensor& got, const torch::Tensor& want, const std::string& what) {
  ASSERT_TRUE(got.defined()) << what;
  EXPECT_EQ(got.scalar_type(), want.scalar_type()) << what;
  EXPECT_EQ(got.sizes(), want.sizes()) << what;
  EXPECT_TRUE(got.device().is_cpu()) << what;
  EXPECT_EQ(bytes_of(got), bytes_of(want)) << what;
}

struct Spec {
  std::string name;
  torch::ScalarType dtype;
  std::vector<int64_t> shape;
};

// Every dtype, a 0-d tensor and empty tensors; names chosen so that name order and the
// alignment order disagree.
std::vector<Spec> all_specs() {
  std::vector<Spec> specs = {
      {"a.bool", torch::kBool, {3, 5}},     {"b.u8", torch::kByte, {7}},
      {"c.i8", torch::kChar, {2, 3}},       {"d.i16", torch::kShort, {4, 1}},
      {"e.i32", torch::kInt, {9}},          {"f.i64", torch::kLong, {2, 2, 2}},
      {"g.f16", torch::kHalf, {5, 3}},      {"h.bf16", torch::kBFloat16, {3, 5}},
      {"i.f32", torch::kFloat, {6, 7}},     {"j.f64", torch::kDouble, {3}},
      {"p.c64", torch::kComplexFloat, {2}}, {"scalar", torch::kFloat, {}},
      {"empty", torch::kFloat, {0}},        {"empty2d", torch::kHalf, {3, 0, 2}}};
  // float8 arrived in libtorch 2.1, unsigned 16/32/64 in 2.3 (this file builds against any 2.x).
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 1
  specs.push_back({"k.f8e4m3", torch::kFloat8_e4m3fn, {11}});
  specs.push_back({"l.f8e5m2", torch::kFloat8_e5m2, {2, 5}});
#endif
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 3
  specs.push_back({"m.u16", torch::kUInt16, {5}});
  specs.push_back({"n.u32", torch::kUInt32, {3}});
  specs.push_back({"o.u64", torch::kUInt64, {2}});
#endif
  return specs;
}

std::vector<std::pair<std::string, torch::Tensor>> make_tensors(const std::vector<Spec>& specs) {
  std::vector<std::pair<std::string, torch::Tensor>> out;
  for (const auto& s : specs) out.emplace_back(s.name, pattern(s.dtype, s.shape));
  return out;
}

// The message of the reef::Error `f` throws ("" when it throws none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(Safetensors, RoundTripEveryDtypeAndShape) {
  testing::ScratchDir dir;
  auto tensors = make_tensors(all_specs());
  save_safetensors(dir / "m.safetensors", tensors);
  auto loaded = load_safetensors(dir / "m.safetensors");
  ASSERT_EQ(loaded.size(), tensors.size());
  for (const auto& [name, t] : tensors) expect_same(loaded.at(name), t, name);
  EXPECT_EQ(loaded.at("scalar").dim(), 0);
  EXPECT_EQ(loaded.at("empty2d").sizes(), (std::vector<int64_t>{3, 0, 2}));
  EXPECT_EQ(list_dir(dir.path()), std::vector<std::string>{"m.safetensors"});  // no temp left
}

TEST(Safetensors, NonContiguousInputsAreWrittenAsTheirValues) {
  testing::ScratchDir dir;
  torch::Tensor base = pattern(torch::kFloat, {4, 6});
  std::vector<std::pair<std::string, torch::Tensor>> tensors = {
      {"transposed", base.t()},
      {"strided", base.slice(1, 0, 6, 2)},
      {"expanded", pattern(torch::kBFloat16, {1, 3}).expand({4, 3})},
      {"offset_view", base[2]},
      {"conj", torch::complex(base, -base).conj()},
      {"neg_view", torch::_neg_view(base)},
  };
  ASSERT_FALSE(tensors[0].second.is_contiguous());
  save_safetensors(dir / "v.safetensors", tensors);
  auto loaded = load_safetensors(dir / "v.safetensors");
  for (const auto& [name, t] : tensors)
    expect_same(loaded.at(name), t.resolve_conj().resolve_neg().contiguous(), name);
  EXPECT_TRUE(torch::equal(loaded.at("transposed"), base.t()));
}

TEST(Safetensors, MetadataRoundTrips) {
  testing::ScratchDir dir;
  std::map<std::string, std::string> meta = {{"format", "pt"},
                                             {"quote\"and\\slash", "line\nbreak\ttab \x01"},
                                             {"ünïcode", "値"},
                                             {"empty", ""}};
  save_safetensors(dir / "m.safetensors", {{"w", pattern(torch::kFloat, {2})}}, meta);
  auto f = SafetensorsFile::open(dir / "m.safetensors");
  EXPECT_EQ(f.metadata(), meta);
  save_safetensors(dir / "none.safetensors", {{"w", pattern(torch::kFloat, {2})}});
  EXPECT_TRUE(SafetensorsFile::open(dir / "none.safetensors").metadata().empty());
  EXPECT_EQ(read_file(dir / "none.safetensors").find("__metadata__"), std::string::npos);
}

TEST(Safetensors, LayoutFollowsTheReferenceWriter) {
  testing::ScratchDir dir;
  save_safetensors(dir / "m.safetensors", make_tensors(all_specs()), {{"format", "pt"}});
  std::string bytes = read_file(dir / "m.safetensors");
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  EXPECT_EQ(n % 8, 0u);
  std::string header = bytes.substr(8, n);
  EXPECT_EQ(header.rfind("{\"__metadata__\":{\"format\":\"pt\"},", 0), 0u) << header;
  EXPECT_EQ(header.find_first_not_of(' ', header.find_last_of('}') + 1), std::string::npos);

  auto f = SafetensorsFile::open(dir / "m.safetensors");
  // Larger alignment first, in the reference dtype order, then by name.
  std::vector<std::string> want = {"o.u64",    "f.i64",  "j.f64", "p.c64", "empty",
                                   "i.f32",    "scalar", "n.u32", "e.i32", "h.bf16",
                                   "empty2d",  "g.f16",  "m.u16", "d.i16", "k.f8e4m3",
                                   "l.f8e5m2", "c.i8",   "b.u8",  "a.bool"};
#if TORCH_VERSION_MAJOR > 2 || TORCH_VERSION_MINOR >= 3
  EXPECT_EQ(f.keys(), want);
#endif
  for (const auto& name : f.keys()) {
    const auto& e = f.entry(name);
    EXPECT_EQ((8 + n + e.begin) % torch::elementSize(e.dtype), 0u) << name;  // aligned data
  }
  EXPECT_TRUE(f.contains("h.bf16"));
  EXPECT_FALSE(f.contains("missing"));
  EXPECT_EQ(f.dtype("h.bf16"), torch::kBFloat16);
  EXPECT_EQ(f.shape("f.i64"), (std::vector<int64_t>{2, 2, 2}));
  EXPECT_EQ(f.shape("scalar"), std::vector<int64_t>{});
  EXPECT_EQ(f.path(), dir / "m.safetensors");
  std::string err = error_of([&] { f.tensor("missing"); });
  EXPECT_NE(err.find("missing"), std::string::npos) << err;
  EXPECT_NE(err.find(dir / "m.safetensors"), std::string::npos) << err;
}

TEST(Safetensors, ViewsOutliveTheFileObjectAndNeverWriteToTheFile) {
  testing::ScratchDir dir;
  auto tensors = make_tensors(all_specs());
  std::string path = dir / "m.safetensors";
  save_safetensors(path, tensors);
  std::string before = read_file(path);
  torch::Tensor w;
  {
    auto f = SafetensorsFile::open(path);
    for (const auto& [name, t] : tensors) expect_same(f.tensor(name), t, name);
    w = f.tensor("i.f32");
    EXPECT_EQ(f.tensor("i.f32").data_ptr(), w.data_ptr());  // zero-copy views of one mapping
    const auto& e = f.entry("i.f32");
    EXPECT_EQ(static_cast<const uint8_t*>(w.data_ptr()), f.data() + e.begin);
  }
  expect_same(w, pattern(torch::kFloat, {6, 7}), "view after close");
  w.mul_(2).add_(1);  // private copy-on-write pages
  EXPECT_TRUE(torch::equal(w, pattern(torch::kFloat, {6, 7}) * 2 + 1));
  EXPECT_EQ(read_file(path), before);
  EXPECT_TRUE(
      torch::equal(SafetensorsFile::open(path).tensor("i.f32"), pattern(torch::kFloat, {6, 7})));
}

TEST(Safetensors, SaveRejectsWhatTheFormatCannotHold) {
  testing::ScratchDir dir;
  std::string p = dir / "x.safetensors";
  auto t = pattern(torch::kFloat, {2});
  EXPECT_NE(error_of([&] {
              save_safetensors(p, {{"a", t}, {"a", t}});
            }).find("duplicate tensor name 'a'"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              save_safetensors(p, {{"__metadata__", t}});
            }).find("__metadata__"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              save_safetensors(p, {{"u", torch::Tensor()}});
            }).find("undefined"),
            std::string::npos);
  std::string err = error_of([&] {
    save_safetensors(p, {{"c", torch::zeros({2}, torch::kComplexDouble)}});
  });
  EXPECT_NE(err.find("ComplexDouble"), std::string::npos) << err;
  EXPECT_NE(err.find(p), std::string::npos) << err;
  EXPECT_TRUE(list_dir(dir.path()).empty());  // nothing, not even a temp file, was written
}

// ---- malformed files, built by hand ----

std::string le64(uint64_t v) {
  std::string s(8, '\0');
  std::memcpy(&s[0], &v, 8);
  return s;
}

std::string file_with(const std::string& header, const std::string& data) {
  return le64(header.size()) + header + data;
}

struct BadCase {
  const char* what;
  std::string bytes;
  const char* expect;  // substring of the message
};

TEST(Safetensors, MalformedFilesAreNamedErrors) {
  testing::ScratchDir dir;
  std::string f32x2 = std::string(8, '\x01');
  auto one = [](const std::string& entry) { return "{\"t\":" + entry + "}"; };
  std::vector<BadCase> cases = {
      {"empty file", "", "shorter than the 8-byte header length"},
      {"short file", "abc", "shorter than the 8-byte header length"},
      {"header size beyond the file", le64(1000) + "{}", "only 2 bytes follow"},
      {"absurd header size", le64(~0ull) + "{}", "truncated"},
      {"invalid JSON", file_with("{\"t\": [1,", ""), "not valid JSON"},
      {"invalid UTF-8", file_with("{\"\xff\":1}", ""), "not valid JSON"},
      {"not an object", file_with("[1, 2]", ""), "not a JSON object"},
      {"unknown dtype", file_with(one(R"({"dtype":"Q8","shape":[2],"data_offsets":[0,8]})"), f32x2),
       "unknown dtype 'Q8'"},
      {"missing dtype", file_with(one(R"({"shape":[2],"data_offsets":[0,8]})"), f32x2),
       "\"dtype\""},
      {"negative dim",
       file_with(one(R"({"dtype":"F32","shape":[-2],"data_offsets":[0,8]})"), f32x2),
       "non-negative integer"},
      {"fractional dim",
       file_with(one(R"({"dtype":"F32","shape":[2.5],"data_offsets":[0,8]})"), f32x2),
       "non-negative integer"},
      {"overflowing shape",
       file_with(one(R"({"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]})"),
                 f32x2),
       "overflows"},
      {"bad offsets", file_with(one(R"({"dtype":"F32","shape":[2],"data_offsets":[0]})"), f32x2),
       "data_offsets"},
      {"end before begin",
       file_with(one(R"({"dtype":"F32","shape":[0],"data_offsets":[8,0]})"), f32x2),
       "end before they begin"},
      {"shape/offset mismatch",
       file_with(one(R"({"dtype":"F32","shape":[3],"data_offsets":[0,8]})"), f32x2),
       "shape [3] of F32 needs 12 bytes but data_offsets [0, 8] span 8"},
      {"offsets out of bounds",
       file_with(one(R"({"dtype":"F32","shape":[4],"data_offsets":[0,16]})"), f32x2),
       "truncated: tensor 't' ends at data byte 16 but the data buffer holds only 8 bytes"},
      {"overlap",
       file_with(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                 R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                 std::string(12, 'x')),
       "tensor 'b' (data bytes [4, 12)) overlaps tensor 'a'"},
      {"gap",
       file_with(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                 std::string(12, 'x')),
       "gap: data bytes [4, 8) before tensor 'b'"},
      {"gap at the start",
       file_with(one(R"({"dtype":"F32","shape":[1],"data_offsets":[4,8]})"), f32x2),
       "gap: data bytes [0, 4)"},
      {"trailing bytes",
       file_with(one(R"({"dtype":"F32","shape":[1],"data_offsets":[0,4]})"), f32x2),
       "gap: the last 4 bytes"},
      {"duplicate keys",
       file_with(R"({"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                 R"("t":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
                 f32x2),
       "duplicate key 't'"},
      {"duplicate field",
       file_with(one(R"({"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]})"), f32x2),
       "duplicate key 'dtype'"},
      {"metadata not strings",
       file_with(
           R"({"__metadata__":{"step":3},"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})",
           f32x2),
       "__metadata__ value of 'step' is not a string"},
  };
  for (const auto& c : cases) {
    std::string path = dir / "bad.safetensors";
    write_file_atomic(path, c.bytes);
    for (int api = 0; api < 3; ++api) {
      std::string err = error_of([&] {
        if (api == 0) SafetensorsFile::open(path);
        if (api == 1) load_safetensors(path);
        if (api == 2) verify_safetensors(path);
      });
      EXPECT_NE(err.find(c.expect), std::string::npos) << c.what << ": " << err;
      EXPECT_NE(err.find(path), std::string::npos) << c.what << ": " << err;
    }
  }
}

TEST(Safetensors, MissingFileIsAUsageError) {
  testing::ScratchDir dir;
  try {
    SafetensorsFile::open(dir / "nope.safetensors");
    FAIL() << "expected reef::Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    EXPECT_NE(std::string(e.what()).find(dir / "nope.safetensors"), std::string::npos);
  }
}

TEST(Safetensors, ForeignButValidFilesAreAccepted) {
  testing::ScratchDir dir;
  std::string path = dir / "ok.safetensors";
  // Unsorted entries, leading whitespace, unpadded (misaligned) header, null metadata, extra
  // fields: all valid for the reference reader.
  float vals[3] = {1.5f, -2.0f, 3.25f};
  std::string data(reinterpret_cast<const char*>(vals), 12);
  write_file_atomic(
      path, file_with(R"( {"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12],"x":1},)"
                      R"("__metadata__":null,"a":{"dtype":"F32","shape":[],"data_offsets":[0,4]}})",
                      data));
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f.keys(), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(f.tensor("a").item<float>(), 1.5f);
  EXPECT_TRUE(torch::equal(f.tensor("b"), torch::tensor({-2.0f, 3.25f})));
  EXPECT_TRUE(torch::equal(load_safetensors(path).at("b"), torch::tensor({-2.0f, 3.25f})));
  EXPECT_FALSE(verify_safetensors(path));  // no checksum recorded
}

TEST(Safetensors, TruncationAnywhereIsDetected) {
  testing::ScratchDir dir;
  std::string good = dir / "good.safetensors";
  save_safetensors(good, make_tensors(all_specs()), {{"format", "pt"}}, /*checksum=*/true);
  std::string bytes = read_file(good);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  std::vector<size_t> cuts = {0,
                              1,
                              7,
                              8,
                              9,
                              8 + n / 2,
                              8 + n - 1,
                              8 + n,
                              8 + n + 1,
                              8 + n + 100,
                              bytes.size() - 9,
                              bytes.size() - 1};
  for (size_t cut : cuts) {
    ASSERT_LT(cut, bytes.size());
    std::string path = dir / "cut.safetensors";
    write_file_atomic(path, bytes.substr(0, cut));
    std::string err = error_of([&] { load_safetensors(path); });
    EXPECT_NE(err.find("truncated"), std::string::npos) << "cut at " << cut << ": " << err;
    EXPECT_NE(err.find(path), std::string::npos) << err;
  }
}

TEST(Safetensors, ChecksumCatchesAFlippedDataByte) {
  testing::ScratchDir dir;
  std::string path = dir / "c.safetensors";
  auto tensors = make_tensors(all_specs());
  save_safetensors(path, tensors, {{"format", "pt"}}, /*checksum=*/true);
  auto f = SafetensorsFile::open(path);
  ASSERT_EQ(f.metadata().at(kSafetensorsChecksumKey).size(), 16u);
  EXPECT_EQ(f.metadata().at("format"), "pt");
  EXPECT_TRUE(verify_safetensors(path));
  for (const auto& [name, t] : tensors) expect_same(load_safetensors(path).at(name), t, name);

  std::string bytes = read_file(path);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  for (size_t pos : {size_t(8 + n), size_t(8 + n + 37), bytes.size() - 1}) {
    std::string bad = bytes;
    bad[pos] ^= 0x10;
    write_file_atomic(path, bad);
    for (auto* what : {"verify", "load"}) {
      std::string err = error_of([&] {
        if (std::string(what) == "verify")
          verify_safetensors(path);
        else
          load_safetensors(path);
      });
      EXPECT_NE(err.find("corrupted"), std::string::npos) << what << " byte " << pos << ": " << err;
      EXPECT_NE(err.find(path), std::string::npos) << err;
    }
    EXPECT_NO_THROW(SafetensorsFile::open(path));  // the header itself is fine
  }
}

// ---- cross-checks with the Python reference library ----

std::string spec_lines(const std::vector<Spec>& specs) {
  std::string out;
  for (const auto& s : specs) {
    out += s.name + " " + safetensors_dtype_name(s.dtype);
    for (auto d : s.shape) out += " " + std::to_string(d);
    out += "\n";
  }
  return out;
}

// argv: mode ("check" | "write"), path, spec file, [our file].
constexpr const char* kPython = R"py(
import sys, torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file
T = {'BOOL': torch.bool, 'U8': torch.uint8, 'I8': torch.int8, 'I16': torch.int16,
     'U16': torch.uint16, 'I32': torch.int32, 'U32': torch.uint32, 'I64': torch.int64,
     'U64': torch.uint64, 'F16': torch.float16, 'BF16': torch.bfloat16, 'F32': torch.float32,
     'F64': torch.float64, 'F8_E4M3': torch.float8_e4m3fn, 'F8_E5M2': torch.float8_e5m2,
     'C64': torch.complex64}
def pattern(dtype, shape):
    n = 1
    for d in shape: n *= d
    return (torch.arange(n, dtype=torch.float64) * 37 % 101 * 0.5).reshape(shape).to(dtype)
def raw(t):
    return bytes(t.contiguous().reshape(-1).view(torch.uint8).numpy())
mode, path, spec = sys.argv[1:4]
want = {}
for line in open(spec).read().splitlines():
    name, dt, *dims = line.split()
    want[name] = pattern(T[dt], [int(d) for d in dims])
if mode == 'check':
    got = load_file(path)
    assert sorted(got) == sorted(want), (sorted(got), sorted(want))
    for k, w in want.items():
        g = got[k]
        assert g.dtype == w.dtype and g.shape == w.shape, (k, g.dtype, w.dtype, g.shape, w.shape)
        assert raw(g) == raw(w), k
    with safe_open(path, framework='pt') as f:
        assert f.metadata() == {'format': 'pt'}, f.metadata()
    # The reference writer, given the same tensors, writes the very same bytes.
    save_file(want, sys.argv[4], metadata={'format': 'pt'})
    assert open(sys.argv[4], 'rb').read() == open(path, 'rb').read(), 'bytes differ'
    print('checked', len(want))
else:
    save_file(want, path, metadata={'format': 'pt', 'origin': 'python'})
    print('wrote', len(want))
)py";

TEST(Safetensors, PythonLoadsOurFilesByteForByte) {
  testing::ScratchDir dir;
  auto specs = all_specs();
  write_file_atomic(dir / "spec.txt", spec_lines(specs));
  save_safetensors(dir / "ours.safetensors", make_tensors(specs), {{"format", "pt"}});
  auto r = testing::run_python({"-c", kPython, "check", dir / "ours.safetensors", dir / "spec.txt",
                                dir / "theirs.safetensors"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output, "checked " + std::to_string(specs.size()) + "\n");
}

TEST(Safetensors, WeLoadPythonFiles) {
  testing::ScratchDir dir;
  auto specs = all_specs();
  write_file_atomic(dir / "spec.txt", spec_lines(specs));
  auto r = testing::run_python({"-c", kPython, "write", dir / "py.safetensors", dir / "spec.txt"});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto loaded = load_safetensors(dir / "py.safetensors");
  ASSERT_EQ(loaded.size(), specs.size());
  for (const auto& s : specs) expect_same(loaded.at(s.name), pattern(s.dtype, s.shape), s.name);
  auto f = SafetensorsFile::open(dir / "py.safetensors");
  EXPECT_EQ(f.metadata(),
            (std::map<std::string, std::string>{{"format", "pt"}, {"origin", "python"}}));
  for (const auto& s : specs) expect_same(f.tensor(s.name), pattern(s.dtype, s.shape), s.name);
}

}  // namespace
}  // namespace reef
