// libFuzzer target: decode(encode(x)) == x for the byte tokenizer, Reef-trained byte-level BPEs
// (GPT-2, Llama 3 and Qwen2 patterns) loaded from tokenizer.json, and the same vocabulary as a
// tiktoken rank file, on arbitrary bytes. Built by tests/fuzz/CMakeLists.txt with clang:
//   cmake -S tests/fuzz -B build-fuzz -G Ninja -DCMAKE_CXX_COMPILER=clang++ && ninja -C build-fuzz
//   build-fuzz/tokenizer_roundtrip_fuzz -max_total_time=60 tests/fuzz/corpus
#include <cstdio>
#include <cstdlib>

#include "roundtrip_check.h"

namespace {
reef::roundtrip::Tokenizers* g_tokenizers = nullptr;
}

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  const std::string dir = reef::make_temp_dir("reef-fuzz-");
  g_tokenizers = new reef::roundtrip::Tokenizers(reef::roundtrip::make_tokenizers(dir));
  reef::remove_all(dir);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  const std::string err = reef::roundtrip::check(*g_tokenizers, text);
  if (!err.empty()) {
    std::fprintf(stderr, "round trip failed: %s\n", err.c_str());
    std::abort();
  }
  return 0;
}
