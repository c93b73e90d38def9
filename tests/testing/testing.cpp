// Implementation of testing.h with fork/exec and a pipe.
#include "testing/testing.h"

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>

#include "reef/base/error.h"
#include "reef/base/files.h"

namespace reef::testing {

ScratchDir::ScratchDir() : path_(make_temp_dir("reef-test-")) {}
ScratchDir::~ScratchDir() {
  if (!std::getenv("REEF_KEEP_TEST_DIRS")) {
    try {
      remove_all(path_);
    } catch (...) {
    }
  }
}

std::string source_dir() { return REEF_SOURCE_DIR; }
std::string reef_bin() { return REEF_BIN; }
std::string python_bin() { return REEF_PYTHON; }

ProcResult run_process(const std::vector<std::string>& argv, const std::string& cwd) {
  int fds[2];
  if (::pipe(fds) != 0) fail("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    ::dup2(fds[1], 1);
    ::dup2(fds[1], 2);
    ::close(fds[0]);
    ::close(fds[1]);
    if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execv(args[0], args.data());
    _exit(127);
  }
  ::close(fds[1]);
  ProcResult r;
  char buf[4096];
  for (;;) {
    ssize_t n = ::read(fds[0], buf, sizeof buf);
    if (n > 0) {
      r.output.append(buf, static_cast<size_t>(n));
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    break;
  }
  ::close(fds[0]);
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (WIFEXITED(status)) r.exit_code = WEXITSTATUS(status);
  else if (WIFSIGNALED(status)) r.exit_code = 128 + WTERMSIG(status);
  return r;
}

ProcResult run_reef(const std::vector<std::string>& args) {
  std::vector<std::string> argv{reef_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, source_dir());
}

ProcResult run_python(const std::vector<std::string>& args) {
  std::vector<std::string> argv{python_bin()};
  argv.insert(argv.end(), args.begin(), args.end());
  return run_process(argv, source_dir());
}

}  // namespace reef::testing
