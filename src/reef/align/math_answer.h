// Final-answer extraction and numeric equivalence for the `math` reward of `reef align grpo`:
// GSM8K- and MATH-style tasks whose completions end in "\boxed{...}" or "#### 42", or just say
// the number last. Kept apart from the environment so each rule has its own unit test.
#pragma once

#include <optional>
#include <string>

namespace reef {

// The final answer of a completion: the content of the last "\boxed{...}" whose braces balance,
// else the rest of the line after the last "####", else the last number in the text (with its
// sign, thousands separators, decimals and a "/denominator"); "" when there is none.
std::string extract_math_answer(const std::string& text);

// `s` as a number, when it is one: integers, decimals, a sign, thousands separators ("1,234"),
// fractions "a/b" and "\frac{a}{b}" (also \dfrac, \tfrac, \frac12), a trailing "%" or "$",
// "$" around it or before it, a trailing ".", spaces anywhere. nullopt otherwise.
std::optional<double> parse_math_number(const std::string& s);

// `s` as compared when either side is not a number: no spaces, "$", "\left", "\right", or
// trailing ".", lower case.
std::string normalize_math_answer(const std::string& s);

// Whether two final answers agree: as numbers, |a - b| <= 1e-6 * max(1, |b|) (b the expected);
// otherwise as normalized strings.
bool math_answers_equal(const std::string& answer, const std::string& expected);

}  // namespace reef
