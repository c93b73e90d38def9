// Built-in synthetic tasks for demos and CI, generated in memory from a fixed seed (no files):
//   arithmetic  multiple choice: "Question: What is 23 plus 45?\nAnswer:" among four numbers
//   copy        generate_until: "Copy: <words>\nOutput:" -> the same words, exact match
#pragma once

#include <optional>
#include <string>

#include "reef/eval/task.h"

namespace reef::eval {

// The task named `name`, or nothing when it is not a built-in.
std::optional<Task> make_builtin_task(const std::string& name);

}  // namespace reef::eval
