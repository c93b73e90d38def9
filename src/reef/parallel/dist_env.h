// Where this process sits in a distributed run, read from the environment conventions users
// already have: torchrun's (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT; also what
// `reef launch` sets), Open MPI's (OMPI_COMM_WORLD_*) and Slurm's (SLURM_PROCID, SLURM_NTASKS,
// ...). A pure function of an env map, so every partial or inconsistent combination is a unit
// test, and one clear usage error at start instead of a hang in rendezvous.
#pragma once

#include <map>
#include <string>

namespace reef {

struct DistEnv {
  int rank = 0;
  int world_size = 1;
  int local_rank = 0;
  int local_world_size = 1;
  std::string master_addr = "127.0.0.1";  // the TCPStore host (rank 0's machine)
  int master_port = 29500;
  std::string source = "none";  // "torchrun", "openmpi", "slurm" or "none" (single process)

  bool distributed() const { return world_size > 1; }
};

// Reads the variables of the first convention present, in order torchrun > Open MPI > Slurm
// (torchrun inside a Slurm allocation means torchrun's). Nothing set: a single process.
// Throws a usage error naming the variable for a partial set (RANK without WORLD_SIZE), a
// non-integer, a rank outside [0, world) or a multi-process run without a master address/port
// (Slurm and Open MPI take MASTER_ADDR/MASTER_PORT when given; Slurm falls back to
// SLURM_LAUNCH_NODE_IPADDR and port 29500).
DistEnv dist_env_from(const std::map<std::string, std::string>& env);

// The process environment as a map, for dist_env_from.
std::map<std::string, std::string> current_environment();

}  // namespace reef
