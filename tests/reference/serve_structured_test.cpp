// Structured output from `reef serve` (tests/reference/serve_structured.py): 240 sampled chat
// completions (temperature 1) over 12 JSON schemas with response_format json_schema all parse
// and validate with `jsonschema` and end by themselves; json_object answers are objects; the
// official openai client's chat.completions.parse fills a pydantic model; a keyword the server
// cannot enforce is a 400 naming response_format. Tools (a Hermes-style template): required,
// named and single calls come back as tool_calls whose arguments validate under the tool's
// parameters, streamed calls arrive in a delta, and a second turn with the call and the tool's
// result is rendered with both and answered.
#include <gtest/gtest.h>

#include "testing/serve_process.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(ServeStructuredOutput, SchemasToolCallsAndPydanticParseThroughTheOpenAIClient) {
  const std::string script = testing::source_dir() + "/tests/reference/serve_structured.py";
  const std::string made = testing::cached_python_output(script, {"make"});
  testing::ServeProcess server(made + "/model", {"--max-batch", "16"});
  auto r = testing::run_python({script, "check", server.base_url()});
  std::cout << r.output;
  EXPECT_EQ(r.exit_code, 0) << r.output << "\nserver log:\n" << server.log();
  EXPECT_NE(r.output.find("all structured-output checks passed"), std::string::npos) << r.output;
  EXPECT_EQ(server.stop(), 0) << server.log();
}

}  // namespace
}  // namespace reef
