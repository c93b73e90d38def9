// Tests for base/crc32c.h and base/tensorboard.h: CRC-32C against published vectors, and event
// files read back by TensorBoard's own Python reader (record CRCs, file version, scalars, text).
#include "reef/base/tensorboard.h"

#include <gtest/gtest.h>

#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(Crc32c, KnownVectors) {
  EXPECT_EQ(crc32c("123456789", 9), 0xE3069283u);
  std::vector<uint8_t> zeros(32, 0), ones(32, 0xFF), inc(32), dec(32);
  for (int i = 0; i < 32; ++i) inc[i] = uint8_t(i), dec[i] = uint8_t(31 - i);
  // RFC 3720 (iSCSI) appendix B.4 test vectors.
  EXPECT_EQ(crc32c(zeros.data(), 32), 0x8A9136AAu);
  EXPECT_EQ(crc32c(ones.data(), 32), 0x62A8AB43u);
  EXPECT_EQ(crc32c(inc.data(), 32), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec.data(), 32), 0x113FDB5Cu);
  EXPECT_EQ(crc32c("", 0), 0u);
}

TEST(Crc32c, ExtendMatchesOneShotAtEverySplit) {
  std::string s;
  for (int i = 0; i < 100; ++i) s.push_back(char(i * 37 + 11));
  uint32_t whole = crc32c(s.data(), s.size());
  for (size_t cut = 0; cut <= s.size(); ++cut)
    EXPECT_EQ(crc32c_extend(crc32c(s.data(), cut), s.data() + cut, s.size() - cut), whole) << cut;
}

TEST(Crc32c, MaskIsTfRecordRotation) {
  EXPECT_EQ(crc32c_mask(0), 0xa282ead8u);
  EXPECT_EQ(crc32c_mask(0x00008000u), 0xa282ead9u);  // bit 15 rotates to bit 0
  EXPECT_EQ(crc32c_mask(1), 0xa282ead8u + (1u << 17));
}

TEST(TensorBoard, FileNameAndFileVersionRecordWrittenAtOpen) {
  testing::ScratchDir dir;
  std::string logdir = dir / "runs/a";
  TensorBoardWriter w(logdir);
  auto names = list_dir(logdir);
  ASSERT_EQ(names.size(), 1u);
  EXPECT_EQ(join_path(logdir, names[0]), w.path());
  EXPECT_EQ(names[0].rfind("events.out.tfevents.", 0), 0u) << names[0];
  std::string bytes = read_file(w.path());
  ASSERT_GE(bytes.size(), 16u);
  uint64_t len = 0;
  std::memcpy(&len, bytes.data(), 8);
  EXPECT_EQ(bytes.size(), 8 + 4 + len + 4);  // exactly one record so far
  EXPECT_NE(bytes.find("brain.Event:2"), std::string::npos);
  // Records wait in memory until flush(), then land whole.
  w.add_scalar("loss", 1.0, 1);
  EXPECT_EQ(read_file(w.path()).size(), bytes.size());
  w.flush();
  std::string after = read_file(w.path());
  ASSERT_GT(after.size(), bytes.size());
  std::memcpy(&len, after.data() + bytes.size(), 8);
  EXPECT_EQ(after.size(), bytes.size() + 8 + 4 + len + 4);
  EXPECT_NE(after.find("loss", bytes.size()), std::string::npos);
  // Two writers in one process get distinct files.
  TensorBoardWriter w2(logdir);
  EXPECT_NE(w.path(), w2.path());
  EXPECT_EQ(list_dir(logdir).size(), 2u);
}

// TensorBoard's reader checks every CRC, the version record, every scalar and the text.
constexpr const char* kReadBack = R"py(
import struct, sys
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c
from tensorboard.compat.proto.event_pb2 import Event
from tensorboard.backend.event_processing import event_accumulator as ea
path, logdir = sys.argv[1], sys.argv[2]
data = open(path, 'rb').read()
pos, events = 0, []
while pos < len(data):
    header = data[pos:pos + 8]
    (n,) = struct.unpack('<Q', header)
    (hcrc,) = struct.unpack('<I', data[pos + 8:pos + 12])
    assert hcrc == masked_crc32c(header), 'length crc at %d' % pos
    body = data[pos + 12:pos + 12 + n]
    (bcrc,) = struct.unpack('<I', data[pos + 12 + n:pos + 16 + n])
    assert bcrc == masked_crc32c(body), 'data crc at %d' % pos
    events.append(Event.FromString(body))
    pos += 16 + n
assert events[0].file_version == 'brain.Event:2', events[0]
acc = ea.EventAccumulator(logdir, size_guidance={ea.SCALARS: 0, ea.TENSORS: 0})
acc.Reload()
for tag in sorted(acc.Tags()['scalars']):
    for s in acc.Scalars(tag):
        print('S %s %d %.9g' % (tag, s.step, s.value))
for tag in sorted(acc.Tags()['tensors']):
    for t in acc.Tensors(tag):
        print('T %s %d %s' % (tag, t.step, t.tensor_proto.string_val[0].decode('utf-8')))
print('records', len(events))
)py";

TEST(TensorBoard, TensorBoardReadsBackEveryScalarAndText) {
  testing::ScratchDir dir;
  std::string expected;
  std::string path;
  {
    TensorBoardWriter w(dir.path());
    path = w.path();
    for (int64_t step = 0; step < 50; ++step) {
      w.add_scalar("train/loss", 4.0 / (step + 1), step);
      if (step % 10 == 0) w.add_scalar("train/lr", 3e-4 * step, step);
    }
    w.add_scalar("eval/big_step", -2.5, int64_t(1) << 40);
    w.add_text("config", "model: **llama** ünïcode", 7);
  }  // destructor flushes
  auto r = testing::run_python({"-c", kReadBack, path, dir.path()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::vector<std::string> want;
  auto g = [](double v) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.9g", double(float(v)));
    return std::string(buf);
  };
  want.push_back("S eval/big_step " + std::to_string(int64_t(1) << 40) + " " + g(-2.5));
  for (int64_t step = 0; step < 50; ++step)
    want.push_back("S train/loss " + std::to_string(step) + " " + g(4.0 / (step + 1)));
  for (int64_t step = 0; step < 50; step += 10)
    want.push_back("S train/lr " + std::to_string(step) + " " + g(3e-4 * step));
  want.push_back("T config 7 model: **llama** ünïcode");
  want.push_back("records " + std::to_string(1 + 50 + 5 + 1 + 1));
  std::string joined;
  for (auto& s : want) joined += s + "\n";
  EXPECT_EQ(r.output, joined);
}

TEST(TensorBoard, ConcurrentWritersProduceOnlyWholeRecords) {
  testing::ScratchDir dir;
  std::string path;
  {
    TensorBoardWriter w(dir.path());
    path = w.path();
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&w, t] {
        for (int i = 0; i < 500; ++i) {
          w.add_scalar("thread" + std::to_string(t), i, i);
          if (i % 100 == 0) w.flush();
        }
      });
    for (auto& th : threads) th.join();
  }
  auto r = testing::run_python({"-c", kReadBack, path, dir.path()});
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("records 2001\n"), std::string::npos) << r.output.substr(0, 2000);
  EXPECT_NE(r.output.find("S thread3 499 499\n"), std::string::npos);
}

TEST(TensorBoard, UnwritableLogdirIsAnErrorNamingIt) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "file", "x");
  try {
    TensorBoardWriter w(dir / "file/sub");
    FAIL() << "expected reef::Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(dir / "file/sub"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace reef
