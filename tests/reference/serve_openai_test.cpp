// The official `openai` Python client (PyPI, test-only) against `reef serve`: chat, completions
// and streaming, checked against transformers by serve_openai_client.py.
#include <gtest/gtest.h>

#include "testing/serve_process.h"
#include "testing/testing.h"

namespace reef {
namespace {

TEST(ServeOpenAIClient, ChatCompletionsAndStreamingMatchTransformers) {
  const std::string models = testing::cached_python_output(
      testing::source_dir() + "/tests/integration/model_cli_reference.py", {"make"});
  testing::ServeProcess server(models + "/llama", {"--api-key", "sk-client-test"});
  auto r = testing::run_python({testing::source_dir() + "/tests/reference/serve_openai_client.py",
                                server.base_url(), "sk-client-test", models + "/llama"});
  EXPECT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("all openai client checks passed"), std::string::npos) << r.output;
  EXPECT_EQ(server.stop(), 0) << server.log();
}

}  // namespace
}  // namespace reef
