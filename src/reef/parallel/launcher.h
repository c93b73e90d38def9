// `reef launch`: starts the local ranks of a distributed run with torchrun's environment
// (RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT), prefixes each
// line they print with "[rank K] ", forwards SIGINT/SIGTERM, and when one rank fails stops the
// others (SIGTERM, SIGKILL after a grace period) and names it in one line. `--slurm` writes an
// sbatch script for the same run instead (srun gives each task Slurm's environment).
#pragma once

#include <string>
#include <vector>

namespace reef {

struct LaunchOptions {
  int nproc_per_node = 1;
  int nnodes = 1;
  int node_rank = 0;
  std::string master_addr = "127.0.0.1";
  int master_port = 0;               // 0: a free port on this machine (single node only)
  double grace_s = 10.0;             // after SIGTERM, seconds before SIGKILL
  std::vector<std::string> command;  // argv of each rank; a first word "reef" is this executable
};

// Runs the local ranks to completion. Returns 0 when all exit 0; otherwise the failed rank's
// exit code (128 + signal when killed), or 128 + the signal the launcher itself received.
// Throws a usage error for bad options (nothing started).
int launch_local(const LaunchOptions& opts);

struct SlurmOptions {
  int nodes = 1;
  int gpus_per_node = 0;   // 0: CPU nodes
  int tasks_per_node = 0;  // 0: gpus_per_node, or 1 on CPU nodes
  int cpus_per_task = 0;   // 0: leave to Slurm
  int master_port = 29500;
  std::string job_name = "reef", partition, account, time;
  std::vector<std::string> command;
};

// The sbatch script (text) for `opts`. Throws a usage error for bad options.
std::string slurm_script(const SlurmOptions& opts);

// `word` quoted for a POSIX shell when it needs it.
std::string shell_quote(const std::string& word);

}  // namespace reef
