// Shared test helpers: scratch directories, running the `reef` binary or the reference Python
// (venv) as a child process with captured output, and paths compiled in by CMake.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace reef::testing {

// A fresh directory removed at destruction (kept when REEF_KEEP_TEST_DIRS is set).
class ScratchDir {
 public:
  ScratchDir();
  ~ScratchDir();
  const std::string& path() const { return path_; }
  std::string operator/(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

struct ProcResult {
  int exit_code = -1;  // exit status, or 128+signal when killed
  std::string output;  // stdout and stderr interleaved
};

// `data` compressed as a gzip member (zlib's deflate) or a zstd frame (libzstd), for tests
// of compressed inputs.
std::string gzip_bytes(const std::string& data);
std::string zstd_bytes(const std::string& data);

// Runs argv (argv[0] is a path) to completion, capturing stdout+stderr.
ProcResult run_process(const std::vector<std::string>& argv, const std::string& cwd = "");
// Runs the reef binary with the given arguments from the source directory.
ProcResult run_reef(const std::vector<std::string>& args);
// Runs the venv Python with the given arguments from the source directory.
ProcResult run_python(const std::vector<std::string>& args);

// Starts argv in the background with stdout+stderr appended to `log_path`; returns the pid.
int spawn_process(const std::vector<std::string>& argv, const std::string& cwd,
                  const std::string& log_path);
// Waits for a spawned process; returns its exit code or 128+signal.
int wait_process(int pid);
// Polls whether a spawned process has exited without blocking; sets *exit_code when it has.
bool try_wait_process(int pid, int* exit_code);

// Runs the venv Python script `script` (a path under the source tree) with `args` followed by an
// output folder, once per build: the folder is kept under <build>/test-cache, keyed by the
// script's content and the args, and later calls (other test processes under ctest) reuse it.
// Concurrent callers wait on a lock instead of running it twice. Returns the folder; a failing
// script is a test failure (fail() with its output) and leaves no cache entry.
std::string cached_python_output(const std::string& script, const std::vector<std::string>& args);

// The values of `key` in a run's metrics.jsonl, by step (records without the key skipped).
std::map<int64_t, double> metric_by_step(const std::string& metrics_path,
                                         const std::string& key = "loss");

// `reef launch --nproc-per-node N -- reef <cmd...>` as run_reef arguments.
std::vector<std::string> launch_args(int nproc, const std::vector<std::string>& cmd);

// The small pretraining corpus of the distributed-training tests: 400 "fortune N favours the
// bold" documents (N = i * 7919 % 1000), written to `path`.
void write_fortune_corpus(const std::string& path);

// Makes run folder `to` hold only `from`'s step_<step> checkpoint (and, with `metrics`, its
// metrics.jsonl), ready for --resume.
void seed_resume_dir(const std::string& from, const std::string& to, int64_t step,
                     bool metrics = true);

std::string source_dir();
std::string reef_bin();
std::string python_bin();

}  // namespace reef::testing
