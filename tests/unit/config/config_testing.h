// Helpers shared by the config tests: catching the one-line usage error a call must raise, and
// writing a YAML file into a scratch folder.
#pragma once

#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/models/family.h"

namespace reef::config_testing {

// Loading a config applies the model families' presets and rules (config/model_rules.h).
inline const bool kModelFamiliesInstalled = (install_model_families(), true);

// Runs `fn`, which must throw reef::Error of kind kUsage (exit code 2) with a single-line
// message; returns the message ("" and a test failure otherwise).
inline std::string usage_message(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::kUsage) << e.what();
    EXPECT_EQ(e.exit_code(), 2);
    std::string msg = e.what();
    EXPECT_EQ(msg.find('\n'), std::string::npos) << "not one line: " << msg;
    return msg;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "expected reef::Error(kUsage), got another exception: " << e.what();
    return "";
  }
  ADD_FAILURE() << "expected reef::Error(kUsage), nothing was thrown";
  return "";
}

inline bool contains(const std::string& haystack, const std::string& needle) {
  return haystack.find(needle) != std::string::npos;
}

// Writes `text` to `dir/name` and returns the path.
inline std::string write_yaml(const std::string& dir, const std::string& name,
                              const std::string& text) {
  std::string path = dir + "/" + name;
  write_file_atomic(path, text);
  return path;
}

}  // namespace reef::config_testing

// Asserts that `msg` contains `part`, printing the whole message when it does not.
#define EXPECT_HAS(msg, part)                                  \
  EXPECT_TRUE(::reef::config_testing::contains((msg), (part))) \
      << "message: " << (msg) << "\nmissing: " << (part)
