// Task YAML loading and contexts: lm-evaluation-harness task fields (data files relative to the
// YAML, splits, doc_to_* as field names, templates or lists), the defaults the harness applies,
// few-shot contexts, and one-line usage errors for what Reef cannot run.
#include "reef/eval/task.h"

#include <gtest/gtest.h>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/eval/builtin_tasks.h"
#include "testing/testing.h"

namespace reef::eval {
namespace {

std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage);
    return e.what();
  }
  ADD_FAILURE() << "no error";
  return "";
}

TEST(TaskYaml, MmluStyleTaskLoadsAndBuildsContexts) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "q.jsonl", R"({"question": " 2+2? ", "choices": ["3", "4"], "answer": 1})"
                                     "\n");
  write_file_atomic(
      dir / "t.yaml",
      "task: mini\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: q.jsonl\n"
      "test_split: test\noutput_type: multiple_choice\n"
      "doc_to_text: \"{{question.strip()}}\\nA. {{choices[0]}}\\nB. {{choices[1]}}\\nAnswer:\"\n"
      "doc_to_choice: [\"A\", \"B\"]\ndoc_to_target: answer\ntag: [x]\n");
  Task t = make_task(dir / "t.yaml", {});
  EXPECT_EQ(t.name(), "mini");
  ASSERT_EQ(t.config().metrics.size(), 2u);  // acc, acc_norm by default
  EXPECT_EQ(t.config().metrics[1].metric, "acc_norm");
  const auto& doc = t.eval_docs().at(0);
  const std::string ctx = t.fewshot_context(doc, 0);
  EXPECT_EQ(ctx, "2+2?\nA. 3\nB. 4\nAnswer:");
  auto reqs = t.construct_requests(doc, ctx);
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_EQ(reqs[1].continuation, " B");
  EXPECT_EQ(t.gold_index(doc), 1);
  // Found by name through an include path, too.
  EXPECT_EQ(make_task("mini", {dir.path()}).name(), "mini");
}

TEST(TaskYaml, FewShotFromTrainSplitWithDelimiters) {
  testing::ScratchDir dir;
  write_file_atomic(dir / "test.jsonl", R"({"q": "a", "a": "1"})"
                                        "\n");
  write_file_atomic(dir / "train.jsonl", R"({"q": "b", "a": "2"})"
                                         "\n"
                                         R"({"q": "c", "a": "3"})"
                                         "\n");
  write_file_atomic(
      dir / "t.yaml",
      "task: fs\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: test.jsonl\n"
      "    train: train.jsonl\ntest_split: test\nfewshot_split: train\n"
      "output_type: generate_until\ndoc_to_text: \"Q {{q}}\"\ndoc_to_target: a\n"
      "description: \"D. \"\n");
  Task t = make_task(dir / "t.yaml", {});
  const std::string ctx = t.fewshot_context(t.eval_docs()[0], 2);
  // Both train docs, in the order random.Random(1234).sample(range(2), 2) gives.
  PythonRandom r(1234);
  auto order = r.sample(2, 2);
  const char* qs[] = {"b", "c"};
  const char* as[] = {"2", "3"};
  std::string want = "D. ";
  for (auto i : order) want += std::string("Q ") + qs[i] + " " + as[i] + "\n\n";
  EXPECT_EQ(ctx, want + "Q a");
  EXPECT_EQ(t.config().until, std::vector<std::string>{"\n\n"});  // the harness's default stop
}

TEST(TaskYaml, UnsupportedInputIsOneUsageLine) {
  testing::ScratchDir dir;
  auto load = [&](const std::string& body) {
    write_file_atomic(dir / "t.yaml", body);
    return load_task_yaml(dir / "t.yaml");
  };
  const std::string head =
      "task: x\ndataset_path: json\ndataset_kwargs:\n  data_files:\n    test: q.jsonl\ntest_split: "
      "test\n";
  EXPECT_NE(usage_message([&] {
              load(head + "process_docs: !function utils.process_docs\n");
            }).find("Python function"),
            std::string::npos);
  EXPECT_NE(
      usage_message([&] { load(head + "doc_to_txt: q\n"); }).find("unknown task key 'doc_to_txt'"),
      std::string::npos);
  EXPECT_NE(usage_message([&] {
              load(head + "output_type: multiple_choice\ndoc_to_text: q\n");
            }).find("needs doc_to_choice"),
            std::string::npos);
  EXPECT_NE(
      usage_message([&] { load("task: x\ndataset_path: hellaswag\n"); }).find("only local files"),
      std::string::npos);
  EXPECT_NE(usage_message([&] {
              load(head + "metric_list:\n  - metric: bleu\n");
            }).find("unsupported metric 'bleu'"),
            std::string::npos);
  write_file_atomic(dir / "t.yaml", head);
  EXPECT_NE(usage_message([&] { make_task(dir / "t.yaml", {}); }).find("task data file not found"),
            std::string::npos);
}

TEST(BuiltinTasks, ArithmeticAndCopyAreDeterministic) {
  auto a = make_builtin_task("arithmetic");
  ASSERT_TRUE(a.has_value());
  ASSERT_EQ(a->eval_docs().size(), 100u);
  const auto& d = a->eval_docs()[0];
  auto choices = a->doc_to_choice(d);
  ASSERT_EQ(choices.size(), 4u);
  // The gold choice is the sum the question asks for.
  int x = 0, y = 0;
  ASSERT_EQ(sscanf(d["question"].get<std::string>().c_str(), "What is %d plus %d?", &x, &y), 2);
  EXPECT_EQ(choices[static_cast<size_t>(a->gold_index(d))], std::to_string(x + y));
  EXPECT_EQ(make_builtin_task("arithmetic")->eval_docs(), a->eval_docs());
  auto c = make_builtin_task("copy");
  ASSERT_TRUE(c.has_value());
  EXPECT_EQ(c->fewshot_context(c->eval_docs()[0], 0),
            "Copy: " + c->eval_docs()[0]["text"].get<std::string>() + "\nOutput:");
  EXPECT_FALSE(make_builtin_task("nope").has_value());
}

}  // namespace
}  // namespace reef::eval
