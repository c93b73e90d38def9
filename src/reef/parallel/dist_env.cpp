// Implementation of parallel/dist_env.h.
#include "reef/parallel/dist_env.h"

#include <cerrno>
#include <cstdlib>

#include "reef/base/error.h"

extern char** environ;

namespace reef {
namespace {

const std::string* find(const std::map<std::string, std::string>& env, const std::string& key) {
  auto it = env.find(key);
  return it == env.end() ? nullptr : &it->second;
}

int parse_int(const std::string& key, const std::string& value, const char* convention) {
  errno = 0;
  char* end = nullptr;
  long v = std::strtol(value.c_str(), &end, 10);
  if (value.empty() || *end != '\0' || errno != 0 || v < 0 || v > 1 << 24)
    usage_error("{}='{}' ({} environment): expected a non-negative integer", key, value,
                convention);
  return static_cast<int>(v);
}

// The value of `key` as an int; `fallback` when absent, or an error when it is required.
int int_var(const std::map<std::string, std::string>& env, const std::string& key,
            const char* convention, int fallback, bool required, const std::string& because) {
  const std::string* v = find(env, key);
  if (!v) {
    if (required)
      usage_error("{} is not set but {} is ({} environment); set both or neither", key, because,
                  convention);
    return fallback;
  }
  return parse_int(key, *v, convention);
}

void check_ranks(DistEnv& d, const char* rank_key, const char* world_key, const char* local_key,
                 const char* convention) {
  if (d.world_size < 1)
    usage_error("{}={} ({} environment): expected at least 1", world_key, d.world_size, convention);
  if (d.rank >= d.world_size)
    usage_error("{}={} is outside {}={} ({} environment): ranks run from 0 to {}", rank_key, d.rank,
                world_key, d.world_size, convention, d.world_size - 1);
  if (d.local_rank >= d.world_size)
    usage_error("{}={} is not below {}={} ({} environment)", local_key, d.local_rank, world_key,
                d.world_size, convention);
  if (d.local_world_size < 1 || d.local_world_size > d.world_size)
    d.local_world_size = d.world_size;
  if (d.local_rank >= d.local_world_size) d.local_world_size = d.local_rank + 1;
}

// MASTER_ADDR / MASTER_PORT: required for torchrun and Open MPI runs of several processes.
void read_master(const std::map<std::string, std::string>& env, DistEnv& d, const char* convention,
                 bool required, const std::string& addr_fallback) {
  const std::string* addr = find(env, "MASTER_ADDR");
  const std::string* port = find(env, "MASTER_PORT");
  if (addr && addr->empty())
    usage_error("MASTER_ADDR is empty ({} environment): expected rank 0's host name or address",
                convention);
  if (addr)
    d.master_addr = *addr;
  else if (!addr_fallback.empty())
    d.master_addr = addr_fallback;
  else if (required && d.distributed())
    usage_error(
        "MASTER_ADDR is not set ({} environment, {} processes): set it to rank 0's host name or "
        "address",
        convention, d.world_size);
  if (port) {
    d.master_port = parse_int("MASTER_PORT", *port, convention);
    if (d.master_port < 1 || d.master_port > 65535)
      usage_error("MASTER_PORT={} ({} environment): expected a TCP port in 1..65535", *port,
                  convention);
  } else if (required && d.distributed()) {
    usage_error(
        "MASTER_PORT is not set ({} environment, {} processes): set a free TCP port on rank 0's "
        "host",
        convention, d.world_size);
  }
}

}  // namespace

DistEnv dist_env_from(const std::map<std::string, std::string>& env) {
  DistEnv d;
  if (find(env, "RANK") || find(env, "WORLD_SIZE")) {
    const char* c = "torchrun";
    d.source = c;
    d.rank = int_var(env, "RANK", c, 0, true, "WORLD_SIZE");
    d.world_size = int_var(env, "WORLD_SIZE", c, 1, true, "RANK");
    d.local_rank = int_var(env, "LOCAL_RANK", c, d.rank, false, "");
    d.local_world_size = int_var(env, "LOCAL_WORLD_SIZE", c, d.world_size, false, "");
    check_ranks(d, "RANK", "WORLD_SIZE", "LOCAL_RANK", c);
    read_master(env, d, c, true, "");
    return d;
  }
  if (find(env, "OMPI_COMM_WORLD_RANK") || find(env, "OMPI_COMM_WORLD_SIZE")) {
    const char* c = "Open MPI";
    d.source = "openmpi";
    d.rank = int_var(env, "OMPI_COMM_WORLD_RANK", c, 0, true, "OMPI_COMM_WORLD_SIZE");
    d.world_size = int_var(env, "OMPI_COMM_WORLD_SIZE", c, 1, true, "OMPI_COMM_WORLD_RANK");
    d.local_rank = int_var(env, "OMPI_COMM_WORLD_LOCAL_RANK", c, 0, false, "");
    d.local_world_size = int_var(env, "OMPI_COMM_WORLD_LOCAL_SIZE", c, d.world_size, false, "");
    check_ranks(d, "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK", c);
    read_master(env, d, c, true, "");
    return d;
  }
  if (find(env, "SLURM_PROCID")) {
    const char* c = "Slurm";
    d.source = "slurm";
    // srun sets the step's task count; SLURM_NTASKS is the allocation's.
    const char* world_key =
        find(env, "SLURM_STEP_NUM_TASKS") ? "SLURM_STEP_NUM_TASKS" : "SLURM_NTASKS";
    d.rank = int_var(env, "SLURM_PROCID", c, 0, true, world_key);
    d.world_size = int_var(env, world_key, c, 1, true, "SLURM_PROCID");
    d.local_rank = int_var(env, "SLURM_LOCALID", c, 0, false, "");
    d.local_world_size = d.world_size;
    if (const std::string* per_node = find(env, "SLURM_NTASKS_PER_NODE")) {
      // "4" or "4(x2)": the tasks on each node.
      std::string n = per_node->substr(0, per_node->find('('));
      d.local_world_size = parse_int("SLURM_NTASKS_PER_NODE", n, c);
    }
    check_ranks(d, "SLURM_PROCID", world_key, "SLURM_LOCALID", c);
    const std::string* launch_node = find(env, "SLURM_LAUNCH_NODE_IPADDR");
    read_master(env, d, c, false, launch_node ? *launch_node : "");
    if (d.distributed() && !find(env, "MASTER_ADDR") && !launch_node)
      usage_error(
          "MASTER_ADDR is not set and Slurm gave no SLURM_LAUNCH_NODE_IPADDR ({} tasks): "
          "export MASTER_ADDR=$(scontrol show hostnames \"$SLURM_JOB_NODELIST\" | head -n 1)",
          d.world_size);
    return d;
  }
  return d;
}

std::map<std::string, std::string> current_environment() {
  std::map<std::string, std::string> out;
  for (char** e = environ; e && *e; ++e) {
    std::string kv(*e);
    auto eq = kv.find('=');
    if (eq != std::string::npos) out[kv.substr(0, eq)] = kv.substr(eq + 1);
  }
  return out;
}

}  // namespace reef
