// PythonRandom against CPython's random.Random: the expected values were printed by Python 3.11
// (random.Random(1234).sample(range(10), 3) etc.), covering both of sample()'s algorithms.
#include "reef/eval/python_random.h"

#include <gtest/gtest.h>

namespace reef::eval {
namespace {

TEST(PythonRandom, MatchesCPythonSequence) {
  PythonRandom r(1234);
  EXPECT_EQ(r.sample(10, 3), (std::vector<int64_t>{7, 1, 0}));
  EXPECT_EQ(r.sample(100, 4), (std::vector<int64_t>{11, 74, 4, 85}));
  EXPECT_EQ(r.getrandbits(32), 2976787804u);
  EXPECT_EQ(r.sample(7, 7), (std::vector<int64_t>{0, 6, 2, 1, 5, 4, 3}));
}

TEST(PythonRandom, LargeSeedAndSetBasedSampling) {
  PythonRandom r((1ull << 40) + 5);  // a two-word seed key
  EXPECT_EQ(r.sample(1000, 8), (std::vector<int64_t>{516, 529, 275, 679, 948, 28, 543, 776}));
}

}  // namespace
}  // namespace reef::eval
