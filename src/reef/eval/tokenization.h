// How lm-evaluation-harness's HFLM tokenizes requests, shared by the local model and the
// endpoint client so both send the model the same tokens: HF encode with the tokenizer's own
// special tokens (its default) unless the text already starts with the prefix token's text;
// _encode_pair's trailing-space move and whole-string split; the prefix token (bos, else eos)
// as the context of an empty-context request.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "reef/tokenizer/tokenizer.h"

namespace reef::eval {

int32_t hflm_prefix_token(const Tokenizer& t);
std::vector<int32_t> hflm_encode(const Tokenizer& t, const std::string& text,
                                 bool add_special_tokens = true);
// (context tokens, continuation tokens) as HFLM's loglikelihood builds them.
std::pair<std::vector<int32_t>, std::vector<int32_t>> hflm_encode_pair(
    const Tokenizer& t, const std::string& context, const std::string& continuation);

}  // namespace reef::eval
