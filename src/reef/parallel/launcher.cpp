// Implementation of parallel/launcher.h: fork/exec of the local ranks, one poll loop that
// relays their output line by line and watches their exits.
#include "reef/parallel/launcher.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <climits>
#include <cstring>

#include "reef/base/error.h"

namespace reef {
namespace {

std::atomic<int> g_launch_signal{0};
void on_launch_signal(int sig) { g_launch_signal = sig; }

std::string self_executable() {
  char buf[PATH_MAX];
  ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0)
    fail("reef launch: cannot find this executable (/proc/self/exe): {}", std::strerror(errno));
  return std::string(buf, static_cast<size_t>(n));
}

int free_tcp_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) fail("reef launch: socket: {}", std::strerror(errno));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof(a);
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    ::close(fd);
    fail("reef launch: no free TCP port for the rendezvous: {}", std::strerror(errno));
  }
  ::close(fd);
  return ntohs(a.sin_port);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return fmt::format("exit status {}", WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    int sig = WTERMSIG(status);
    return fmt::format("signal {} ({})", sig, ::strsignal(sig));
  }
  return "unknown status";
}

int exit_code_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return 1;
}

// One output stream of one rank: bytes until the next newline, then "[rank K] line".
struct Stream {
  int fd = -1;
  int out_fd = 1;
  std::string prefix, pending;

  void emit(const std::string& line) const {
    std::string s = prefix + line + "\n";
    const char* p = s.data();
    size_t left = s.size();
    while (left > 0) {
      ssize_t n = ::write(out_fd, p, left);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) return;
      p += n;
      left -= static_cast<size_t>(n);
    }
  }
  // Reads what is there; false at end of file.
  bool pump() {
    char buf[8192];
    ssize_t n = ::read(fd, buf, sizeof(buf));
    if (n < 0 && (errno == EINTR || errno == EAGAIN)) return true;
    if (n <= 0) {
      if (!pending.empty()) emit(pending);
      pending.clear();
      ::close(fd);
      fd = -1;
      return false;
    }
    pending.append(buf, static_cast<size_t>(n));
    size_t start = 0, nl;
    while ((nl = pending.find('\n', start)) != std::string::npos) {
      emit(pending.substr(start, nl - start));
      start = nl + 1;
    }
    pending.erase(0, start);
    return true;
  }
};

struct Rank {
  int rank = 0;
  pid_t pid = -1;
  bool running = true;
  int status = 0;
  Stream out, err;
};

void validate(const LaunchOptions& o) {
  if (o.command.empty())
    usage_error(
        "reef launch: no command; usage: reef launch --nproc-per-node N -- reef pretrain ...");
  if (o.nproc_per_node < 1)
    usage_error("reef launch: --nproc-per-node={}: expected at least 1", o.nproc_per_node);
  if (o.nnodes < 1) usage_error("reef launch: --nnodes={}: expected at least 1", o.nnodes);
  if (o.node_rank < 0 || o.node_rank >= o.nnodes)
    usage_error("reef launch: --node-rank={} is outside 0..{} (--nnodes={})", o.node_rank,
                o.nnodes - 1, o.nnodes);
  if (o.master_port < 0 || o.master_port > 65535)
    usage_error("reef launch: --master-port={}: expected a TCP port in 1..65535 (0: a free one)",
                o.master_port);
  if (o.nnodes > 1 && o.master_port == 0)
    usage_error("reef launch: --nnodes={} needs --master-port (the same free port on every node)",
                o.nnodes);
  if (o.nnodes > 1 &&
      (o.master_addr.empty() || o.master_addr == "127.0.0.1" || o.master_addr == "localhost"))
    usage_error(
        "reef launch: --nnodes={} needs --master-addr: node 0's address, reachable from every node",
        o.nnodes);
  if (o.grace_s < 0) usage_error("reef launch: --grace-s={}: expected a number >= 0", o.grace_s);
}

Rank start_rank(const LaunchOptions& o, const std::vector<std::string>& argv, int local_rank,
                int port) {
  Rank r;
  r.rank = o.node_rank * o.nproc_per_node + local_rank;
  int out_pipe[2], err_pipe[2];
  if (::pipe(out_pipe) != 0 || ::pipe(err_pipe) != 0)
    fail("reef launch: pipe: {}", std::strerror(errno));
  const int world = o.nnodes * o.nproc_per_node;
  std::vector<std::pair<std::string, std::string>> env = {
      {"RANK", std::to_string(r.rank)},
      {"WORLD_SIZE", std::to_string(world)},
      {"LOCAL_RANK", std::to_string(local_rank)},
      {"LOCAL_WORLD_SIZE", std::to_string(o.nproc_per_node)},
      {"GROUP_RANK", std::to_string(o.node_rank)},
      {"MASTER_ADDR", o.master_addr},
      {"MASTER_PORT", std::to_string(port)}};
  const pid_t parent = ::getpid();
  pid_t pid = ::fork();
  if (pid < 0) fail("reef launch: fork: {}", std::strerror(errno));
  if (pid == 0) {
    // The child dies with the launcher, so a killed launcher leaves no orphan ranks.
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (::getppid() != parent) ::_exit(1);
    ::signal(SIGINT, SIG_DFL);
    ::signal(SIGTERM, SIG_DFL);
    ::signal(SIGPIPE, SIG_DFL);  // the launcher ignores it; the rank should not
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (int fd : {out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    for (auto& [k, v] : env) ::setenv(k.c_str(), v.c_str(), 1);
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    ::execvp(args[0], args.data());
    std::string msg =
        fmt::format("reef launch: cannot run {}: {}\n", argv[0], std::strerror(errno));
    (void)!::write(2, msg.data(), msg.size());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  r.pid = pid;
  r.out = Stream{out_pipe[0], 1, fmt::format("[rank {}] ", r.rank), ""};
  r.err = Stream{err_pipe[0], 2, fmt::format("[rank {}] ", r.rank), ""};
  return r;
}

void signal_running(std::vector<Rank>& ranks, int sig) {
  for (auto& r : ranks)
    if (r.running) ::kill(r.pid, sig);
}

}  // namespace

int launch_local(const LaunchOptions& o) {
  validate(o);
  std::vector<std::string> argv = o.command;
  if (argv[0] == "reef") argv[0] = self_executable();
  const int port = o.master_port > 0 ? o.master_port : free_tcp_port();

  g_launch_signal = 0;
  struct sigaction sa {
  }, old_int{}, old_term{};
  sa.sa_handler = on_launch_signal;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, &old_int);
  ::sigaction(SIGTERM, &sa, &old_term);
  ::signal(SIGPIPE, SIG_IGN);

  std::vector<Rank> ranks;
  for (int i = 0; i < o.nproc_per_node; ++i) ranks.push_back(start_rank(o, argv, i, port));

  using Clock = std::chrono::steady_clock;
  int received = 0;  // a signal the launcher got and forwarded
  int failed = -1;   // index of the first rank that failed
  bool killed = false;
  Clock::time_point kill_at;
  for (;;) {
    if (int sig = g_launch_signal.exchange(0)) {
      received = sig;
      signal_running(ranks, sig);
    }
    std::vector<pollfd> fds;
    std::vector<Stream*> streams;
    for (auto& r : ranks)
      for (Stream* s : {&r.out, &r.err})
        if (s->fd >= 0) {
          fds.push_back({s->fd, POLLIN, 0});
          streams.push_back(s);
        }
    bool any_running = false;
    for (auto& r : ranks) any_running |= r.running;
    if (!any_running && fds.empty()) break;
    if (!fds.empty()) {
      int n = ::poll(fds.data(), fds.size(), 100);
      if (n > 0)
        for (size_t i = 0; i < fds.size(); ++i)
          if (fds[i].revents & (POLLIN | POLLHUP | POLLERR)) streams[i]->pump();
    } else {
      ::usleep(50 * 1000);
    }
    for (size_t i = 0; i < ranks.size(); ++i) {
      Rank& r = ranks[i];
      if (!r.running) continue;
      int status = 0;
      if (::waitpid(r.pid, &status, WNOHANG) != r.pid) continue;
      r.running = false;
      r.status = status;
      bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
      if (!ok && failed < 0 && received == 0) {
        failed = static_cast<int>(i);
        signal_running(ranks, SIGTERM);
        kill_at = Clock::now() + std::chrono::milliseconds(static_cast<int64_t>(o.grace_s * 1000));
      }
    }
    if (failed >= 0 && !killed && Clock::now() >= kill_at) {
      signal_running(ranks, SIGKILL);
      killed = true;
    }
  }
  ::sigaction(SIGINT, &old_int, nullptr);
  ::sigaction(SIGTERM, &old_term, nullptr);

  const int world = o.nnodes * o.nproc_per_node;
  if (failed >= 0) {
    const Rank& r = ranks[static_cast<size_t>(failed)];
    std::string msg = fmt::format(
        "reef launch: rank {} (pid {}) failed with {}; stopped the other {} local rank(s)\n",
        r.rank, r.pid, describe_status(r.status), o.nproc_per_node - 1);
    (void)!::write(2, msg.data(), msg.size());
    int code = exit_code_of(r.status);
    return code == 0 ? 1 : code;
  }
  int worst = 0;
  for (const auto& r : ranks) worst = std::max(worst, exit_code_of(r.status));
  if (received != 0) {
    std::string msg = fmt::format(
        "reef launch: stopped by signal {} ({}); forwarded to the {} local rank(s) of {}\n",
        received, ::strsignal(received), o.nproc_per_node, world);
    (void)!::write(2, msg.data(), msg.size());
    return worst != 0 ? worst : 128 + received;
  }
  return worst;
}

std::string shell_quote(const std::string& w) {
  if (!w.empty() &&
      w.find_first_not_of(
          "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-./=:,+@%") ==
          std::string::npos)
    return w;
  std::string out = "'";
  for (char c : w) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurm_script(const SlurmOptions& o) {
  if (o.command.empty())
    usage_error(
        "reef launch --slurm: no command; usage: reef launch --slurm --nodes M -- reef pretrain "
        "...");
  if (o.nodes < 1) usage_error("reef launch --slurm: --nodes={}: expected at least 1", o.nodes);
  if (o.gpus_per_node < 0)
    usage_error("reef launch --slurm: --gpus-per-node={}: expected 0 or more", o.gpus_per_node);
  if (o.tasks_per_node < 0)
    usage_error("reef launch --slurm: --tasks-per-node={}: expected 0 or more", o.tasks_per_node);
  if (o.master_port < 1 || o.master_port > 65535)
    usage_error("reef launch --slurm: --master-port={}: expected a TCP port in 1..65535",
                o.master_port);
  const int tasks = o.tasks_per_node > 0 ? o.tasks_per_node : std::max(1, o.gpus_per_node);
  std::string cmd;
  for (const auto& a : o.command) cmd += (cmd.empty() ? "" : " ") + shell_quote(a);
  std::string s = "#!/bin/bash\n";
  s += fmt::format(
      "# Written by `reef launch --slurm`: {} node(s) x {} rank(s) = {} ranks. Submit with "
      "sbatch.\n",
      o.nodes, tasks, o.nodes * tasks);
  s += "# srun gives each task SLURM_PROCID / SLURM_NTASKS / SLURM_LOCALID, which reef reads as "
       "its\n"
       "# rank, world size and local rank; rank 0's node hosts the rendezvous "
       "(MASTER_ADDR:MASTER_PORT).\n";
  s += fmt::format("#SBATCH --job-name={}\n", shell_quote(o.job_name));
  s += fmt::format("#SBATCH --nodes={}\n", o.nodes);
  s += fmt::format("#SBATCH --ntasks-per-node={}\n", tasks);
  if (o.gpus_per_node > 0) s += fmt::format("#SBATCH --gpus-per-node={}\n", o.gpus_per_node);
  if (o.cpus_per_task > 0) s += fmt::format("#SBATCH --cpus-per-task={}\n", o.cpus_per_task);
  if (!o.partition.empty()) s += fmt::format("#SBATCH --partition={}\n", shell_quote(o.partition));
  if (!o.account.empty()) s += fmt::format("#SBATCH --account={}\n", shell_quote(o.account));
  if (!o.time.empty()) s += fmt::format("#SBATCH --time={}\n", shell_quote(o.time));
  s += "#SBATCH --output=%x-%j.out\n";
  s += "set -euo pipefail\n";
  s += "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)\n";
  s += fmt::format("export MASTER_PORT={}\n", o.master_port);
  s += "# One failed task ends the job step (no hang); --label prefixes output with the task "
       "rank.\n";
  s += fmt::format("srun --kill-on-bad-exit=1 --label {}\n", cmd);
  return s;
}

}  // namespace reef
