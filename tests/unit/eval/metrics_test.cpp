// Metrics, filters and request helpers against lm-evaluation-harness 0.4: expected values were
// printed by lm_eval's own functions (get_rolling_token_windows + make_disjoint_window,
// RegexFilter, exact_match_hf_evaluate, re.split word counts) on the same inputs.
#include "reef/eval/metrics.h"

#include <gtest/gtest.h>

#include <cmath>

#include "reef/eval/language_model.h"

namespace reef::eval {
namespace {

using Window = std::pair<std::vector<int32_t>, std::vector<int32_t>>;

TEST(RollingWindows, MatchHarness) {
  std::vector<int32_t> ten{0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
  EXPECT_EQ(rolling_windows(ten, 99, 4),
            (std::vector<Window>{{{99}, {0, 1, 2, 3}}, {{3}, {4, 5, 6, 7}}, {{5, 6, 7}, {8, 9}}}));
  EXPECT_EQ(rolling_windows({0, 1, 2}, 99, 4), (std::vector<Window>{{{99}, {0, 1, 2}}}));
  std::vector<int32_t> nine{0, 1, 2, 3, 4, 5, 6, 7, 8};
  EXPECT_EQ(rolling_windows(nine, 99, 4),
            (std::vector<Window>{{{99}, {0, 1, 2, 3}}, {{3}, {4, 5, 6, 7}}, {{4, 5, 6, 7}, {8}}}));
  EXPECT_TRUE(rolling_windows({}, 99, 4).empty());
}

TEST(Metrics, WordCountsAsReSplit) {
  EXPECT_EQ(count_words(" a  b\nc "), 5);
  EXPECT_EQ(count_words("one"), 1);
  EXPECT_EQ(count_chars("h\xc3\xa9llo"), 5);
}

TEST(Metrics, RegexFilterTakesFirstNonEmptyGroup) {
  FilterPipeline f{"flexible",
                   {FilterStep{"regex", "(-?[$0-9.,]{2,})|(-?[0-9]+)", -1, "[invalid]"},
                    FilterStep{"take_first"}}};
  EXPECT_EQ(apply_filter(f, "The answer is 12 and then 3,400."), "3,400.");
  EXPECT_EQ(apply_filter(f, "just 7"), "7");
  EXPECT_EQ(apply_filter(f, "none"), "[invalid]");
}

TEST(Metrics, ExactMatchOptions) {
  MetricConfig gsm{"exact_match"};
  gsm.ignore_case = true;
  gsm.regexes_to_ignore = {",", "\\$", "(?s).*#### ", "\\.$"};
  EXPECT_EQ(exact_match(gsm, "$1,234.", "1234"), 1.0);
  EXPECT_EQ(exact_match(gsm, "Answer #### 42", "42"), 1.0);
  EXPECT_EQ(exact_match(gsm, "ABC", "abc"), 1.0);
  EXPECT_EQ(exact_match(gsm, "41", "42"), 0.0);
  MetricConfig punct{"exact_match"};
  punct.ignore_case = punct.ignore_punctuation = true;
  EXPECT_EQ(exact_match(punct, "a.b c!", "ab C"), 1.0);
  EXPECT_EQ(exact_match(MetricConfig{"exact_match"}, "a.b c!", "ab C"), 0.0);
}

TEST(Metrics, AggregatesAsHarness) {
  auto a = aggregate_mean({1, 0, 0, 1});
  EXPECT_DOUBLE_EQ(a.value, 0.5);
  EXPECT_NEAR(a.stderr_, std::sqrt(1.0 / 3.0) / 2.0, 1e-12);  // sample stddev / sqrt(n)
  EXPECT_NEAR(weighted_perplexity({-2, -4}, {1, 2}), std::exp(2.0), 1e-12);
  EXPECT_NEAR(bits_per_byte({-2, -4}, {1, 2}), 2.0 / std::log(2.0), 1e-12);
  EXPECT_EQ(argmax({1, 3, 3, 2}), 1);  // the first maximum, as numpy
}

TEST(Strings, StopsAndWhitespace) {
  EXPECT_EQ(cut_at_stops("abc\ndef.", {"\n", "."}), "abc");
  EXPECT_EQ(cut_at_stops("abc.def\n", {"\n", "."}), "abc");
  EXPECT_EQ(cut_at_stops("abc", {""}), "abc");
  EXPECT_EQ(trailing_whitespace_bytes("Answer: \n"), 2u);
  EXPECT_EQ(trailing_whitespace_bytes("x\xc2\xa0"), 2u);  // NBSP is whitespace to str.rstrip
  EXPECT_EQ(trailing_whitespace_bytes("x"), 0u);
  EXPECT_EQ(utf8_lossy("a\xff"
                       "b\xe2\x82"),
            "a\xef\xbf\xbd"
            "b\xef\xbf\xbd");
  EXPECT_EQ(utf8_lossy("\xc3\xa9"), "\xc3\xa9");
}

}  // namespace
}  // namespace reef::eval
