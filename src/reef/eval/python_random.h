// Python's `random.Random(seed)` (MT19937 seeded by init_by_array, `_randbelow` by rejection on
// getrandbits, `sample` with its pool/set switch), so that few-shot examples are the very ones
// lm-evaluation-harness draws with its fixed seed (1234): same seed, same call order, same docs.
#pragma once

#include <array>
#include <cstdint>
#include <vector>

namespace reef::eval {

class PythonRandom {
 public:
  // random.Random(seed) for a non-negative integer seed below 2**64.
  explicit PythonRandom(uint64_t seed);
  // random.getrandbits(k) for 0 <= k <= 32.
  uint32_t getrandbits(int k);
  // random._randbelow(n): uniform in [0, n), n >= 1.
  uint64_t randbelow(uint64_t n);
  // The indices that random.sample(range(n), k) returns, in order (k <= n).
  std::vector<int64_t> sample(int64_t n, int64_t k);

 private:
  uint32_t next_u32();
  std::array<uint32_t, 624> mt_{};
  int index_ = 625;
};

}  // namespace reef::eval
