// Tests for align/math_answer.h: where the final answer is found (\boxed, ####, the last
// number), which spellings parse as numbers, and when two answers agree.
#include "reef/align/math_answer.h"

#include <gtest/gtest.h>

#include <optional>
#include <string>

namespace reef {
namespace {

TEST(MathAnswer, ExtractsTheLastBalancedBoxed) {
  EXPECT_EQ(extract_math_answer("so \\boxed{3} or rather \\boxed{\\frac{1}{2}}."), "\\frac{1}{2}");
  EXPECT_EQ(extract_math_answer("\\boxed{ {a}^{2} } is 4"), "{a}^{2}");
  // A box cut off mid-way does not count; the last whole one does.
  EXPECT_EQ(extract_math_answer("\\boxed{7} and then \\boxed{\\frac{1}{"), "7");
  // \boxed wins over #### and over later numbers.
  EXPECT_EQ(extract_math_answer("\\boxed{5}\n#### 6\nthat is 8"), "5");
}

TEST(MathAnswer, ExtractsTheLineAfterTheLastHashes) {
  EXPECT_EQ(extract_math_answer("2 + 3 = 5\n#### 5\n"), "5");
  EXPECT_EQ(extract_math_answer("#### 4\nno, wait\n####  1,250 \nDone."), "1,250");
  // Nothing after ####: the last number instead.
  EXPECT_EQ(extract_math_answer("it is 12 ####"), "12");
}

TEST(MathAnswer, ExtractsTheLastNumber) {
  EXPECT_EQ(extract_math_answer("She has 3 apples, then 12 more: 15."), "15");
  EXPECT_EQ(extract_math_answer("It costs $1,234.50 in total."), "1,234.50");
  EXPECT_EQ(extract_math_answer("The temperature is -7 degrees"), "-7");
  EXPECT_EQ(extract_math_answer("pages 3-5"), "5");  // a hyphen after a digit is no sign
  EXPECT_EQ(extract_math_answer("about 3/4 of it"), "3/4");
  EXPECT_EQ(extract_math_answer("1, 2, 3"), "3");
  EXPECT_EQ(extract_math_answer("no digits here"), "");
}

TEST(MathAnswer, ParsesNumbersInTheirUsualSpellings) {
  auto near = [](const std::string& s, double want) {
    auto v = parse_math_number(s);
    ASSERT_TRUE(v.has_value()) << s;
    EXPECT_NEAR(*v, want, 1e-12) << s;
  };
  near("42", 42);
  near("-3.5", -3.5);
  near(".5", 0.5);
  near("+7", 7);
  near("1,234", 1234);
  near("1,234,567.25", 1234567.25);
  near("1{,}234", 1234);
  near("3/4", 0.75);
  near("-3/4", -0.75);
  near("\\frac{3}{4}", 0.75);
  near("\\dfrac{-1}{2}", -0.5);
  near("-\\frac12", -0.5);
  near("\\tfrac{1}{8}", 0.125);
  near("50%", 50);
  near("50\\%", 50);
  near("$5", 5);
  near("$5$", 5);
  near("5$", 5);
  near("\\$12.50", 12.5);
  near("42.", 42);
  near(" 1 000 ", 1000);
  near("1e-3", 0.001);
  EXPECT_FALSE(parse_math_number("1,23"));  // not a thousands grouping
  EXPECT_FALSE(parse_math_number("1/0"));
  EXPECT_FALSE(parse_math_number("x+1"));
  EXPECT_FALSE(parse_math_number("\\frac{a}{2}"));
  EXPECT_FALSE(parse_math_number(""));
}

TEST(MathAnswer, EqualWithinARelativeToleranceElseAsNormalizedText) {
  EXPECT_TRUE(math_answers_equal("\\frac{1}{2}", "0.5"));
  EXPECT_TRUE(math_answers_equal("1,234", "1234"));
  EXPECT_TRUE(math_answers_equal("$18", "18"));
  EXPECT_TRUE(math_answers_equal("0.0000001", "0"));        // |a-b| <= 1e-6 * max(1, |b|)
  EXPECT_TRUE(math_answers_equal("1000000.5", "1000000"));  // relative: 0.5 <= 1
  EXPECT_FALSE(math_answers_equal("1.00001", "1"));
  EXPECT_FALSE(math_answers_equal("-5", "5"));
  EXPECT_TRUE(math_answers_equal("\\left( 1, 2 \\right)", "(1,2)"));
  EXPECT_TRUE(math_answers_equal("X + 1", "x+1"));
  EXPECT_TRUE(math_answers_equal("Yes.", "yes"));
  EXPECT_FALSE(math_answers_equal("x+2", "x+1"));
  EXPECT_EQ(normalize_math_answer(" $\\left[ A \\right]$. "), "[a]");
}

}  // namespace
}  // namespace reef
