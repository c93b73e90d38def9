// Implementation of eval/tokenization.h.
#include "reef/eval/tokenization.h"

#include "reef/eval/language_model.h"
#include "reef/tokenizer/hf_tokenizer.h"

namespace reef::eval {

using Tokens = std::vector<int32_t>;

int32_t hflm_prefix_token(const Tokenizer& t) { return t.bos_id() >= 0 ? t.bos_id() : t.eos_id(); }

Tokens hflm_encode(const Tokenizer& t, const std::string& text, bool add_special_tokens) {
  auto* hf = dynamic_cast<const HfTokenizer*>(&t);
  if (!hf) return t.encode(text);
  EncodeOptions o;
  o.parse_special = true;  // HF's encode parses special-token text
  o.add_special_tokens = add_special_tokens;
  const int32_t prefix = hflm_prefix_token(t);
  if (add_special_tokens && prefix >= 0) {
    const std::string p = t.decode({prefix}, /*keep_special=*/true);
    if (!p.empty() && text.compare(0, p.size(), p) == 0) o.add_special_tokens = false;
  }
  return hf->encode(text, o);
}

std::pair<Tokens, Tokens> hflm_encode_pair(const Tokenizer& t, const std::string& context_in,
                                           const std::string& cont_in) {
  if (context_in.empty()) {
    Tokens cont = hflm_encode(t, cont_in, /*add_special_tokens=*/false);
    if (!cont.empty() && cont[0] == hflm_prefix_token(t))
      return {Tokens(cont.begin(), cont.begin() + 1), Tokens(cont.begin() + 1, cont.end())};
    return {Tokens{hflm_prefix_token(t)}, cont};
  }
  std::string context = context_in, cont = cont_in;
  const size_t n = trailing_whitespace_bytes(context);
  if (n > 0) {
    cont = context.substr(context.size() - n) + cont;
    context.resize(context.size() - n);
  }
  Tokens whole = hflm_encode(t, context + cont), ctx = hflm_encode(t, context);
  return {ctx,
          Tokens(whole.begin() + static_cast<std::ptrdiff_t>(std::min(ctx.size(), whole.size())),
                 whole.end())};
}

}  // namespace reef::eval
