// Implementation of testing.h with fork/exec and a pipe.
#include "testing/testing.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "reef/base/error.h"
#include "reef/base/files.h"
#include "reef/base/hash.h"

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

std::string gzip_bytes(const std::string& data) {
  z_stream z{};
  if (deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK)
    fail("deflateInit2 failed");
  std::string out(deflateBound(&z, data.size()) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef*>(out.data());
  z.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&z, Z_FINISH);
  out.resize(z.total_out);
  deflateEnd(&z);
  if (rc != Z_STREAM_END) fail("deflate failed");
  return out;
}

std::string zstd_bytes(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  const size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  if (ZSTD_isError(n)) fail("ZSTD_compress failed");
  out.resize(n);
  return out;
}

std::string cached_python_output(const std::string& script, const std::vector<std::string>& args) {
  std::string key = read_file(script);
  for (const auto& a : args) key += '\0' + a;
  const std::string bin = reef_bin();  // <build>/bin/reef
  const std::string build = bin.substr(0, bin.rfind('/', bin.rfind('/') - 1));
  const std::string root = build + "/test-cache";
  make_dirs(root);
  const std::string name = script.substr(script.rfind('/') + 1) + "-" + hex64(xxh64(key));
  const std::string out = root + "/" + name;
  const int lock = ::open((out + ".lock").c_str(), O_CREAT | O_RDWR, 0644);
  if (lock < 0 || ::flock(lock, LOCK_EX) != 0) fail("cannot lock {}.lock", out);
  if (!path_exists(out)) {
    const std::string tmp = out + ".tmp";
    if (path_exists(tmp)) remove_all(tmp);
    make_dirs(tmp);
    std::vector<std::string> argv = {script};
    argv.insert(argv.end(), args.begin(), args.end());
    argv.push_back(tmp);
    ProcResult r = run_python(argv);
    if (r.exit_code != 0) {
      remove_all(tmp);
      ::close(lock);
      fail("{} failed ({}):\n{}", script, r.exit_code, r.output);
    }
    rename_path(tmp, out);
  }
  ::close(lock);
  return out;
}

std::string source_dir() { return REEF_SOURCE_DIR; }
std::string reef_bin() { return REEF_BIN; }
std::string python_bin() { return REEF_PYTHON; }

namespace {
// In a forked child: send stdout and stderr to `out_fd`, enter `cwd`, exec argv. Never returns.
[[noreturn]] void exec_child(const std::vector<std::string>& argv, const std::string& cwd,
                             int out_fd) {
  if (out_fd >= 0) {
    ::dup2(out_fd, 1);
    ::dup2(out_fd, 2);
    ::close(out_fd);
  }
  if (!cwd.empty() && ::chdir(cwd.c_str()) != 0) _exit(126);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  _exit(127);
}

int decode_status(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return -1;
}
}  // namespace

ProcResult run_process(const std::vector<std::string>& argv, const std::string& cwd) {
  int fds[2];
  if (::pipe(fds) != 0) fail("pipe failed");
  pid_t pid = ::fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0) {
    ::close(fds[0]);
    exec_child(argv, cwd, fds[1]);
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
  r.exit_code = wait_process(pid);
  return r;
}

int spawn_process(const std::vector<std::string>& argv, const std::string& cwd,
                  const std::string& log_path) {
  pid_t pid = ::fork();
  if (pid < 0) fail("fork failed");
  if (pid == 0)
    exec_child(argv, cwd, ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644));
  return pid;
}

int wait_process(int pid) {
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  return decode_status(status);
}

bool try_wait_process(int pid, int* exit_code) {
  int status = 0;
  pid_t r = ::waitpid(pid, &status, WNOHANG);
  if (r == pid) {
    *exit_code = decode_status(status);
    return true;
  }
  return false;
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

std::map<int64_t, double> metric_by_step(const std::string& metrics_path, const std::string& key) {
  std::map<int64_t, double> out;
  std::istringstream in(read_file(metrics_path));
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    if (j.contains(key)) out[j["step"].get<int64_t>()] = j[key].get<double>();
  }
  return out;
}

std::vector<std::string> launch_args(int nproc, const std::vector<std::string>& cmd) {
  std::vector<std::string> a = {"launch", "--nproc-per-node", std::to_string(nproc), "--", "reef"};
  a.insert(a.end(), cmd.begin(), cmd.end());
  return a;
}

void write_fortune_corpus(const std::string& path) {
  std::string text;
  for (int i = 0; i < 400; ++i)
    text += "fortune " + std::to_string(i * 7919 % 1000) + " favours the bold\n\n";
  write_file_atomic(path, text);
}

void seed_resume_dir(const std::string& from, const std::string& to, int64_t step, bool metrics) {
  const std::string ck = "/checkpoints/step_" + std::to_string(step);
  std::filesystem::create_directories(to + "/checkpoints");
  std::filesystem::copy(from + ck, to + ck, std::filesystem::copy_options::recursive);
  if (metrics) std::filesystem::copy_file(from + "/metrics.jsonl", to + "/metrics.jsonl");
}

}  // namespace reef::testing
