// A `reef serve` child process for tests: started on a free port (--port 0), its address read
// from the line it prints, stopped with SIGTERM (drain) at the end; and wait_for_log, how any
// test server's start is awaited. Header-only so the integration and reference binaries share
// it.
#pragma once

#include <signal.h>

#include <chrono>
#include <regex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "reef/base/files.h"
#include "testing/testing.h"

namespace reef::testing {

// Waits until the log of the spawned process *pid shows `pattern` and returns the match's
// groups (0: the whole match); throws with the log when the process (`what`) exits first (*pid
// is then -1) or after `seconds`.
inline std::vector<std::string> wait_for_log(int* pid, const std::string& log_path,
                                             const std::regex& pattern, const std::string& what,
                                             int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    std::smatch m;
    const std::string log = path_exists(log_path) ? read_file(log_path) : "";
    if (std::regex_search(log, m, pattern)) return {m.begin(), m.end()};
    int code = 0;
    if (try_wait_process(*pid, &code)) {
      *pid = -1;
      throw std::runtime_error(what + " exited with " + std::to_string(code) + ":\n" + log);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  throw std::runtime_error(what + " did not start listening:\n" + read_file(log_path));
}

class ServeProcess {
 public:
  // Starts `reef serve --model model_dir --port 0 <extra>` and waits until it listens.
  ServeProcess(const std::string& model_dir, const std::vector<std::string>& extra) {
    log_ = dir_ / "serve.log";
    std::vector<std::string> argv = {reef_bin(), "serve", "--model",   model_dir,
                                     "--port",   "0",     "--threads", "1"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = spawn_process(argv, source_dir(), log_);
    auto m = wait_for_log(&pid_, log_, std::regex(R"(listening on http://([0-9.]+):(\d+))"),
                          "reef serve", 60);
    host_ = m[1];
    port_ = std::stoi(m[2]);
  }
  ~ServeProcess() {
    if (pid_ > 0) stop();
  }
  // SIGTERM, then the exit code once it has drained.
  int stop() {
    ::kill(pid_, SIGTERM);
    int code = wait_process(pid_);
    pid_ = -1;
    return code;
  }
  int pid() const { return pid_; }
  const std::string& host() const { return host_; }
  int port() const { return port_; }
  std::string log() const { return read_file(log_); }
  std::string base_url() const { return "http://" + host_ + ":" + std::to_string(port_); }

 private:
  ScratchDir dir_;
  std::string log_, host_;
  int pid_ = -1;
  int port_ = 0;
};

}  // namespace reef::testing
